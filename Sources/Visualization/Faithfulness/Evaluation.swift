import Engine
import Foundation
import Imaging

/// One method's map on one image, and its faithfulness.
public struct EvaluationRow: Sendable, Codable {
    public var image: String
    public var method: CAMMethod
    public var classIndex: Int
    public var label: String?
    public var scores: FaithfulnessScores
    /// Time to compute the map, and the metrics' time (their forward passes dominate).
    public var mapSeconds: Double
    public var metricSeconds: Double

    enum CodingKeys: String, CodingKey {
        case image, method, classIndex = "class", label, scores, mapSeconds = "map_seconds", metricSeconds = "metric_seconds"
    }
}

extension FaithfulnessMetric {
    /// Images the metric scores (forward passes at batch 1; batched, they are fewer calls).
    public func passes(options: FaithfulnessOptions = FaithfulnessOptions()) -> Int {
        switch self {
        case .deletion, .insertion: return options.steps + 1
        case .drop: return 2
        case .road: return 2 * options.roadFractions.count + 1
        }
    }
}

extension FaithfulnessScores {
    /// The scores as named facts (the server's `X-Metric-*` headers).
    var facts: [Fact] {
        let named: [(String, Double?)] = [
            ("Metric-Deletion-AUC", deletionAUC), ("Metric-Insertion-AUC", insertionAUC), ("Metric-Average-Drop", averageDrop),
            ("Metric-Increase-In-Confidence", increaseInConfidence), ("Metric-ROAD-Combined", roadCombined),
            ("Metric-ROAD-MoRF", roadMoRF), ("Metric-ROAD-LeRF", roadLeRF),
        ]
        return named.compactMap { name, value in value.map { Fact(name, String(format: "%.6f", $0)) } }
    }
}

extension ModelSession {
    /// What the metrics perturb for an input: a photo, prepared as for the model, in its 8-bit
    /// space at the model's input size with the model's preprocessing after each perturbation;
    /// a preprocessed tensor as it is. The score is the model's output for the class.
    public func faithfulnessProbe(_ input: RenderInput, classIndex: Int, limits: RenderLimits) throws -> FaithfulnessProbe {
        try faithfulnessProbe(input, target: .classIndex(classIndex), limits: limits)
    }

    /// A probe of a map's target (`CAMResult.target`, resolved on the score node): the same
    /// weights read on the model's output (a head's probabilities have the logits' shape).
    public func faithfulnessProbe(_ input: RenderInput, target: CAMTarget, limits: RenderLimits) throws -> FaithfulnessProbe {
        switch input {
        case .tensor(let t):
            let x = try checkedInput(t)
            return FaithfulnessProbe(image: x, toInput: { $0 }, scoreNode: network.outputNode, target: target)
        case .image(let data):
            let pipeline = try imagePipeline()
            let (_, resized) = try pipeline.prepare(data, maxPixels: limits.maxImagePixels)
            let pixels = Tensor(shape: [1, resized.height, resized.width, resized.channels], scalars: resized.pixels.map(Float.init))
            let preprocessing = pipeline.preprocessing
            return FaithfulnessProbe(
                image: pixels,
                toInput: { t in Tensor(shape: t.shape, scalars: try preprocessing.apply(toPixels: t.scalars, channels: t.shape[3])) },
                scoreNode: network.outputNode, target: target)
        case .files:
            throw RenderInput.notOneImage
        }
    }

    /// The metrics of a map (at a layer's or the input's resolution: upsampled bilinearly,
    /// half-pixel centres, to the probe's size).
    public func faithfulness(
        of map: ClassActivationMap, probe: FaithfulnessProbe, metrics: Set<FaithfulnessMetric>,
        options: FaithfulnessOptions = FaithfulnessOptions()
    ) throws -> FaithfulnessScores {
        let (h, w) = (probe.image.shape[1], probe.image.shape[2])
        let saliency =
            map.height == h && map.width == w
            ? map.heatmap : try upsampleBilinear(map.heatmap, width: map.width, height: map.height, toWidth: w, toHeight: h)
        return try network.faithfulness(of: saliency, probe: probe, metrics: metrics, options: options)
    }

    /// Every method's map of one image for one class (`classChoice`, or the top prediction;
    /// with `target` and `region` as a heatmap request takes them), then the asked metrics of
    /// each, which score the map's own target (a segmentation's cells, a negated output). Pixels are perturbed in the photo's 8-bit space at the
    /// model's input size (black = 0, blur, multiplication by the map, imputation) and go
    /// through the model's own preprocessing; the score is the model's output for the class
    /// (the probability for a softmax head), as the papers use. Maps at a layer's resolution
    /// are upsampled bilinearly (half-pixel centres) to the input size.
    public func evaluate(
        imageData: Data, name: String, methods: [CAMMethod], metrics: Set<FaithfulnessMetric>,
        classChoice: String? = nil, layer: String? = nil, target: TargetDirection? = nil, region: PixelRegion? = nil,
        options: FaithfulnessOptions = FaithfulnessOptions(), limits: RenderLimits = RenderLimits()
    ) throws -> [EvaluationRow] {
        let pipeline = try imagePipeline()
        let (x, _) = try pipeline.prepare(imageData, maxPixels: limits.maxImagePixels)
        // A classifier's class is the top prediction; a segmentation's is what its target picks.
        let classIndex =
            try classChoice.map { try resolveClass($0) } ?? (hasPerPixelOutput ? nil : predict(x, top: 1)[0].classIndex)
        var probe: (target: ResolvedTarget, probe: FaithfulnessProbe)?
        var rows: [EvaluationRow] = []
        for method in methods {
            var request = HeatmapRequest()
            request.method = method
            request.classChoice = classIndex.map(String.init)
            request.layer = layer
            (request.target, request.region) = (target, region)
            let started = Date()
            let cam = try heatmap(request, input: .image(imageData), limits: limits).cam
            let mapped = Date()
            guard let resolved = cam.target else { throw VisualizationError.invalid("\(method.rawValue) gave a map without its target") }
            if probe?.target != resolved {
                probe = (resolved, try faithfulnessProbe(.image(imageData), target: CAMTarget(.resolved(resolved)), limits: limits))
            }
            let scores = try faithfulness(of: cam.map, probe: probe!.probe, metrics: metrics, options: options)
            rows.append(
                EvaluationRow(
                    image: name, method: method, classIndex: cam.map.classIndex, label: label(of: cam.map.classIndex), scores: scores,
                    mapSeconds: mapped.timeIntervalSince(started), metricSeconds: Date().timeIntervalSince(mapped)))
        }
        return rows
    }
}
