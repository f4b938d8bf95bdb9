import Engine
import Imaging

/// What a heatmap shows: the map drawn over the photo, or the coloured map alone.
public enum HeatmapView: String, Sendable, Codable, CaseIterable {
    case overlay, heatmap
}

/// Which way a map explains its score: what raises it (the default) or what lowers it.
public enum TargetDirection: String, Sendable, Codable, CaseIterable {
    case increase, decrease
}

/// `POST /heatmap` and `convlens heatmap`: where in an image the evidence for a class lies.
public struct HeatmapRequest: RenderRequest {
    public static let kind = "heatmap"

    public var method: CAMMethod = .gradcam
    /// A class index or label; nil: the top prediction (of a segmentation: the class that is
    /// the argmax of the most cells). Canonical: the index.
    public var classChoice: String?
    /// Several classes, one map each from shared forward passes (`classes=a,b,c`), in the
    /// order given. Canonical: the indices; one class is `classChoice` instead, nil.
    public var classes: [String]?
    /// `decrease`: explain what lowers the score (the target negated; on a one-unit sigmoid
    /// head, class 0's logit). Canonical: nil for `increase`, so plain requests keep their addresses.
    public var target: TargetDirection?
    /// A segmentation model: sum the class's scores over the output cells this box of the
    /// image covers instead of over the cells assigned to the class.
    public var region: PixelRegion?
    /// The layer whose feature map is weighted; nil: `ModelSession.defaultCAMLayer`.
    /// Canonical: the layer's name, or nil for methods that attribute to pixels.
    public var layer: String?
    /// Score the probability — the output of a softmax or sigmoid head — instead of the
    /// logit before it (the book's choice). Models without such a head score their output
    /// either way, so canonically false for them: one picture, one address.
    public var postActivation = false
    /// CAMs at the layer's resolution: the first principal component of the weighted
    /// activations instead of their sum (`CAMOptions.eigenSmooth`). Canonical: false where
    /// it changes nothing (pixel attributions, Eigen-CAM).
    public var eigenSmooth = false
    /// CAMs at the layer's resolution: average over mirrored and brightness-scaled copies of
    /// the input (`CAMOptions.augSmooth`, six runs). Canonical: false for pixel attributions.
    public var augSmooth = false
    public var alpha: Float = 0.4
    public var colormap: Colormap = .jet
    public var show: HeatmapView = .overlay
    /// Draw the map scaled to this percentile instead of its maximum. Canonical: 99 for
    /// the saliency family (its maps are so peaked that max-scaled they are black), else nil.
    public var displayPercentile: Float?
    /// Predictions listed in the JSON answer.
    public var top = 5
    public var format: OutputFormat = .png
    /// Faithfulness metrics of the map (`Faithfulness.swift`), added to the answer: as
    /// `X-Metric-*` headers, and in the JSON. Canonical: each once, in `allCases` order.
    public var metrics: [FaithfulnessMetric] = []
    /// `fast`: the map's forward and backward passes may run Winograd convolutions
    /// (`Numerics`): the same map to float rounding (a near-tie at a ReLU or max-pool can
    /// route a gradient differently), faster on wide 3×3 layers. Asked for per request;
    /// canonical nil for exact, so exact requests keep their addresses.
    public var numerics: Numerics?

    public static let alphaRange: ClosedRange<Float> = 0...1
    public static let topRange = 1...1000
    public static let percentileRange: ClosedRange<Float> = 0.001...100
    /// Maps one request may ask for with `classes`.
    public static let classesRange = 1...16

    enum CodingKeys: String, CodingKey {
        case method, classChoice = "class", classes, target, region, layer
        case postActivation = "post_activation", eigenSmooth = "eigen_smooth", augSmooth = "aug_smooth"
        case alpha, colormap, show
        case displayPercentile = "display_percentile", top, format, metrics, numerics
    }

    public init() {}

    public func canonical(for session: ModelSession) throws -> HeatmapRequest {
        var r = self
        try RequestError.check("alpha", alpha, in: Self.alphaRange)
        try RequestError.check("top", top, in: Self.topRange)
        if let p = displayPercentile { try RequestError.check("percentile", p, in: Self.percentileRange) }
        if method.weightsALayer {
            r.layer = try session.camLayer(named: layer).path
        } else {
            // Pixel attributions do not read a layer: the same picture whatever was named.
            if let layer { _ = try session.spatialLayer(named: layer) }
            r.layer = nil
            r.displayPercentile = displayPercentile ?? 99
        }
        r.classChoice = try classChoice.map { String(try session.resolveClass($0)) }
        try canonicalizeTargets(&r, for: session)
        if session.keras.head == nil { r.postActivation = false }
        if method.resolution != .layer || method == .eigencam { r.eigenSmooth = false }
        if method.resolution != .layer { r.augSmooth = false }
        r.metrics = FaithfulnessMetric.allCases.filter(metrics.contains)
        r.numerics = Numerics.canonical(numerics)
        return r
    }
}

extension HeatmapRequest {
    /// `classes`, `target` and `region` checked and in their canonical forms.
    fileprivate func canonicalizeTargets(_ r: inout HeatmapRequest, for session: ModelSession) throws {
        if r.target == .increase { r.target = nil }
        if region != nil, !session.hasPerPixelOutput {
            throw RequestError.badParameter(
                name: "region", value: region!.description,
                allowed: "a region needs a per-pixel output (height, width, classes); this model's output is \(session.outputShape)")
        }
        guard let classes else { return }
        let joined = classes.joined(separator: ",")
        guard classChoice == nil else {
            throw RequestError.badParameter(name: "classes", value: joined, allowed: "give class or classes, not both")
        }
        guard Self.classesRange.contains(classes.count) else {
            throw RequestError.badParameter(
                name: "classes", value: joined,
                allowed: "give \(Self.classesRange.lowerBound)...\(Self.classesRange.upperBound) comma-separated class indices or labels")
        }
        var indices: [Int] = []
        for text in classes {
            let k: Int
            do {
                k = try session.resolveClass(text)
            } catch let error as RequestError {
                throw RequestError.badParameter(name: "classes", value: text, allowed: "\(error)")
            }
            guard !indices.contains(k) else {
                throw RequestError.badParameter(name: "classes", value: joined, allowed: "each class once (\(k) is given twice)")
            }
            indices.append(k)
        }
        if !metrics.isEmpty {
            throw RequestError.badParameter(
                name: "metrics", value: metrics.map(\.rawValue).joined(separator: ","),
                allowed: "metrics score one map: ask for one class at a time (class=) with metrics")
        }
        if indices.count == 1 {
            r.classChoice = String(indices[0])
            r.classes = nil
        } else {
            r.classes = indices.map(String.init)
        }
    }
}
