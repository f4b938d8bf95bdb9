import Engine
import Foundation
import Imaging

/// The answer of a comparison: each method's overlay and scores, and which method is best
/// by each score. One JSON document with the overlays inside (base64 PNG): a comparison is
/// one result under one content address, stored and served whole — by this process's cache
/// or the cluster's results table alike — and a page shows each overlay as a `data:` URL
/// without a request per picture.
public struct CompareDocument: Codable, Sendable {
    public var `class`: Int
    public var label: String?
    /// `logit`, `probability` or `output`: what the methods' maps explain.
    public var scoreKind: String
    /// `decrease` when the maps explain what lowers the score.
    public var target: String?
    /// The region of the image whose cells were scored (a segmentation).
    public var region: String?
    /// The layer the layer-based methods weight (nil when none was asked for).
    public var layer: String?
    public var metrics: [FaithfulnessMetric]
    public var methods: [CompareMethodResult]
    /// Per score (`deletion_auc`, `insertion_auc`, `average_drop`, `increase_in_confidence`,
    /// `road_combined`): the methods with the best value (lower deletion and drop, higher
    /// the others); more than one on a tie.
    public var best: [String: [String]]
    /// Wall time of the whole comparison.
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case `class`, label, scoreKind = "score_kind", target, region, layer, metrics, methods, best, seconds
    }
}

/// One method in a comparison.
public struct CompareMethodResult: Codable, Sendable {
    public var method: CAMMethod
    /// The layer of the map, or `input` for pixel attributions.
    public var layer: String
    public var score: Float
    /// The faithfulness scores, as `POST /heatmap?metrics=…&format=json` gives them (without the curves).
    public var scores: FaithfulnessScores
    /// The map drawn over the photo (over nothing for a preprocessed input): a PNG, base64.
    public var overlayPNG: String
    public var overlayWidth: Int
    public var overlayHeight: Int
    public var passes: Int
    /// Time of the map, and of its metrics (their forward passes dominate).
    public var mapSeconds: Double
    public var metricSeconds: Double

    enum CodingKeys: String, CodingKey {
        case method, layer, score, scores, overlayPNG = "overlay_png", overlayWidth = "overlay_width"
        case overlayHeight = "overlay_height", passes, mapSeconds = "map_seconds", metricSeconds = "metric_seconds"
    }
}

extension ModelSession {
    /// Computes a comparison: for each method its heatmap (exactly as `POST /heatmap` would),
    /// its overlay, then each metric in turn. After every map and every metric it calls
    /// `progress(step, steps)`; false stops it (throws `VisualizationError.cancelled`).
    public func compare(
        _ request: CompareRequest, input: RenderInput, limits: RenderLimits = RenderLimits(),
        progress: (_ step: Int, _ steps: Int) -> Bool = { _, _ in true }
    ) throws -> CompareDocument {
        let started = Date()
        let r = try request.canonical(for: self)
        try r.checkCost(for: self, limits: limits)
        let passes = Dictionary(try r.passes(for: self), uniquingKeysWith: { a, _ in a })
        let steps = r.steps
        var step = 0
        func advance() throws {
            guard progress(step, steps) else { throw VisualizationError.cancelled }
        }
        try advance()
        // Probes by target: every method scores the same target unless the maps disagree on the top class.
        var probes: [(target: ResolvedTarget, probe: FaithfulnessProbe)] = []
        var rows: [CompareMethodResult] = []
        var first: HeatmapResult?
        for method in r.methods {
            let mapStarted = Date()
            let result = try heatmap(r.heatmapRequest(method), input: input, limits: limits)
            let map = result.cam.map
            let overlay = try comparisonOverlay(result, method: method, request: r)
            // Compressed fully: the document is computed once and stored (as cached filter pictures are).
            let png = try encodePNG(overlay)
            step += 1
            try advance()
            let metricsStarted = Date()
            guard let target = result.cam.target else {
                throw VisualizationError.invalid("\(method.rawValue) gave a map without its target")
            }
            let probe: FaithfulnessProbe
            if let known = probes.first(where: { $0.target == target }) {
                probe = known.probe
            } else {
                probe = try faithfulnessProbe(input, target: CAMTarget(.resolved(target)), limits: limits)
                probes.append((target, probe))
            }
            var scores = FaithfulnessScores()
            for metric in r.metrics {
                scores.merge(try faithfulness(of: map, probe: probe, metrics: [metric]))
                step += 1
                try advance()
            }
            scores.deletionCurve = nil
            scores.insertionCurve = nil
            rows.append(
                CompareMethodResult(
                    method: method, layer: result.layer, score: map.score, scores: scores,
                    overlayPNG: png.base64EncodedString(), overlayWidth: overlay.width, overlayHeight: overlay.height,
                    passes: passes[method] ?? 0, mapSeconds: metricsStarted.timeIntervalSince(mapStarted),
                    metricSeconds: Date().timeIntervalSince(metricsStarted)))
            if first == nil { first = result }
        }
        let classIndex = first?.cam.map.classIndex ?? 0
        return CompareDocument(
            class: classIndex, label: label(of: classIndex), scoreKind: scoreKind(postActivation: r.postActivation),
            target: r.target?.rawValue, region: r.region?.description,
            layer: r.layer, metrics: r.metrics, methods: rows, best: bestMethods(rows),
            seconds: Date().timeIntervalSince(started))
    }

    /// The map over the photo scaled to fit `overlaySize` (the coloured map alone, at the
    /// model's input size, for a preprocessed input).
    private func comparisonOverlay(_ result: HeatmapResult, method: CAMMethod, request r: CompareRequest) throws -> Image {
        let map = result.cam.map
        // As a heatmap request draws it: pixel attributions scaled to their 99th percentile.
        let percentile = try r.heatmapRequest(method).canonical(for: self).displayPercentile
        guard let photo = result.photo else {
            return try camHeatmapImage(
                map, width: result.inputSize.width, height: result.inputSize.height, colormap: r.colormap,
                displayPercentile: percentile)
        }
        let side = max(photo.width, photo.height)
        let base =
            side <= r.overlaySize
            ? photo
            : try photo.resized(
                width: max(1, photo.width * r.overlaySize / side), height: max(1, photo.height * r.overlaySize / side),
                filter: .bilinear)
        return try camOverlay(map, on: base, alpha: r.alpha, colormap: r.colormap, displayPercentile: percentile)
    }
}

extension FaithfulnessScores {
    /// Takes every score `other` has.
    mutating func merge(_ other: FaithfulnessScores) {
        deletionAUC = other.deletionAUC ?? deletionAUC
        insertionAUC = other.insertionAUC ?? insertionAUC
        deletionCurve = other.deletionCurve ?? deletionCurve
        insertionCurve = other.insertionCurve ?? insertionCurve
        averageDrop = other.averageDrop ?? averageDrop
        increaseInConfidence = other.increaseInConfidence ?? increaseInConfidence
        roadMoRF = other.roadMoRF ?? roadMoRF
        roadLeRF = other.roadLeRF ?? roadLeRF
        roadCombined = other.roadCombined ?? roadCombined
    }
}

/// Per score, the methods with its best value (all of them on a tie).
func bestMethods(_ rows: [CompareMethodResult]) -> [String: [String]] {
    let scores: [(String, (FaithfulnessScores) -> Double?, lowerIsBetter: Bool)] = [
        ("deletion_auc", \.deletionAUC, true), ("insertion_auc", \.insertionAUC, false), ("average_drop", \.averageDrop, true),
        ("increase_in_confidence", \.increaseInConfidence, false), ("road_combined", \.roadCombined, false),
    ]
    var best: [String: [String]] = [:]
    for (name, value, lowerIsBetter) in scores {
        let valued = rows.compactMap { row in value(row.scores).map { (row.method.rawValue, $0) } }
        guard let top = lowerIsBetter ? valued.map(\.1).min() : valued.map(\.1).max() else { continue }
        best[name] = valued.filter { $0.1 == top }.map(\.0)
    }
    return best
}

extension CompareRequest {
    /// A comparison as its JSON document.
    public func render(
        on session: ModelSession, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        let document = try session.compare(self, input: try required(input), limits: limits) { step, steps in
            progress(RenderProgress(step: step, steps: steps, meanLoss: .nan))
        }
        return Rendered(
            body: try jsonDocument(document), format: .json,
            facts: [Fact("Class", String(document.class)), Fact("Methods", String(document.methods.count))])
    }

    public static var jobKinds: [String] { [kind] }

    /// A job at the priority of a grid: it costs many heatmaps, and someone is waiting.
    public func jobPolicy(address: ContentAddress, background: Bool) -> JobPolicy? {
        JobPolicy(kind: Self.kind, priority: .grid, steps: steps, summary: summary, resultPath: Self.resultPath(address))
    }

    public func checkCost(on session: ModelSession, limits: RenderLimits) throws {
        try checkCost(for: session, limits: limits)
    }
}
