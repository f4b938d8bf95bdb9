import Imaging

/// `POST /heatmap/compare`: several attribution methods on one image, each map drawn over
/// the photo and scored by the faithfulness metrics, so a user picks a method by evidence.
/// It costs the sum of its heatmaps and their metrics, so the server runs it as a job.
public struct CompareRequest: RenderRequest {
    public static let kind = "compare"

    /// Empty: every method costing at most `defaultMethodPasses` model passes at the layer
    /// (on the bundled model: all but Score-CAM and Ablation-CAM, whose 1281 passes each must
    /// be asked for by name). Canonical: the methods, each once, in `CAMMethod.allCases` order.
    public var methods: [CAMMethod] = []
    /// Canonical: each once, in `FaithfulnessMetric.allCases` order; at least one.
    /// ROAD is left out by default: its imputation is the dearest metric by far.
    public var metrics: [FaithfulnessMetric] = [.deletion, .insertion, .drop]
    /// A class index or label; nil: the top prediction. Canonical: the index.
    public var classChoice: String?
    /// As `HeatmapRequest.target`: `decrease` explains, and scores, what lowers the score.
    public var target: TargetDirection?
    /// As `HeatmapRequest.region`: a segmentation's class scored over the cells of this box.
    public var region: PixelRegion?
    /// The layer the layer-based methods weight; nil: the model's default CAM layer.
    /// Canonical: its path, or nil when no method asked for reads a layer.
    public var layer: String?
    /// As `HeatmapRequest.postActivation`: score the probability instead of the logit.
    /// Canonically false for a model without a softmax or sigmoid head.
    public var postActivation = false
    public var alpha: Float = 0.4
    public var colormap: Colormap = .jet
    /// Longest side of each overlay in pixels: the photo is scaled down to it (never up), so
    /// a dozen overlays stay a small document whatever the upload's size.
    public var overlaySize = 320

    /// The default method set's cost bound per method (model passes at the layer).
    public static let defaultMethodPasses = 64
    public static let overlaySizeRange = 16...2048

    enum CodingKeys: String, CodingKey {
        case methods, metrics, classChoice = "class", target, region, layer, postActivation = "post_activation", alpha, colormap
        case overlaySize = "overlay_size"
    }

    public init(methods: [CAMMethod] = []) { self.methods = methods }

    public func canonical(for session: ModelSession) throws -> CompareRequest {
        var r = self
        try RequestError.check("alpha", alpha, in: HeatmapRequest.alphaRange)
        try RequestError.check("overlay_size", overlaySize, in: Self.overlaySizeRange)
        guard !metrics.isEmpty else {
            throw RequestError.badParameter(
                name: "metrics", value: "",
                allowed: "give at least one of " + FaithfulnessMetric.allCases.map(\.rawValue).joined(separator: ", "))
        }
        // The layer is resolved first: the default method set depends on its channel count.
        let layer = try session.camLayer(named: layer)
        let channels = layer.outputShape.last ?? 0
        r.methods =
            methods.isEmpty
            ? CAMMethod.allCases.filter { $0.passes(layerChannels: channels) <= Self.defaultMethodPasses }
            : CAMMethod.allCases.filter(methods.contains)
        r.layer = r.methods.contains(where: \.weightsALayer) ? layer.path : nil
        r.metrics = FaithfulnessMetric.allCases.filter(metrics.contains)
        r.classChoice = try classChoice.map { String(try session.resolveClass($0)) }
        if session.keras.head == nil { r.postActivation = false }
        // The targets are checked as a heatmap request checks them.
        (r.target, r.region) = try (heatmapRequest(.gradcam).canonical(for: session).target, region)
        return r
    }

    /// The heatmap request whose map and scores stand for `method` in the comparison
    /// (canonical requests only): what `POST /heatmap?method=…&metrics=…` computes.
    public func heatmapRequest(_ method: CAMMethod) -> HeatmapRequest {
        var h = HeatmapRequest()
        h.method = method
        h.classChoice = classChoice
        (h.target, h.region) = (target, region)
        h.layer = method.weightsALayer ? layer : nil
        h.postActivation = postActivation
        h.alpha = alpha
        h.colormap = colormap
        h.metrics = metrics
        return h
    }

    /// Model passes of each method's map and its metrics (canonical requests only).
    public func passes(for session: ModelSession) throws -> [(method: CAMMethod, passes: Int)] {
        let channels = try layer.map { try session.spatialLayer(named: $0).outputShape.last ?? 0 } ?? 0
        let metricPasses = metrics.reduce(0) { $0 + $1.passes() }
        return methods.map { ($0, $0.passes(layerChannels: channels) + metricPasses) }
    }

    /// Refuses (`RequestError.tooCostly`, naming each method's passes) a comparison whose
    /// passes exceed `limits.maxComparePasses`, or one method's beyond what one heatmap may
    /// cost (`limits.maxHeatmapPasses`, as `POST /heatmap` would), or whose document could
    /// be larger than `limits.maxDocumentBytes` (`checkDocumentSize`). Canonical requests only.
    public func checkCost(for session: ModelSession, limits: RenderLimits) throws {
        try checkDocumentSize(limits: limits)
        let each = try passes(for: session)
        let total = each.reduce(0) { $0 + $1.passes }
        let named = each.map { "\($0.method.rawValue) \($0.passes)" }.joined(separator: ", ")
        if let dearest = each.max(by: { $0.passes < $1.passes }), dearest.passes > limits.maxHeatmapPasses {
            throw RequestError.tooCostly(
                "\(dearest.method.rawValue) with its metrics costs \(dearest.passes) model passes; this server allows \(limits.maxHeatmapPasses) per heatmap (server.max_heatmap_passes). Passes per method: \(named)"
            )
        }
        guard total <= limits.maxComparePasses else {
            throw RequestError.tooCostly(
                "comparing costs \(total) model passes (\(named)); this server allows \(limits.maxComparePasses) per comparison (server.max_compare_passes): ask for fewer methods or metrics"
            )
        }
    }

    /// Steps a comparison reports: each method's map, then each of its metrics.
    public var steps: Int { methods.count * (1 + metrics.count) }

    /// One line saying what the job computes.
    public var summary: String {
        "comparison of \(methods.count) methods by \(metrics.map(\.rawValue).joined(separator: ", "))"
            + (layer.map { " at \($0)" } ?? "")
    }

    /// Where a finished comparison is served, by its content address.
    public static func resultPath(_ address: ContentAddress) -> String { "/heatmap/compare/\(address.hex)" }
}
