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

extension ModelSession {
    /// Every method's map of one image for one class (`classChoice`, or the top prediction),
    /// then the asked metrics of each. Pixels are perturbed in the photo's 8-bit space at the
    /// model's input size (black = 0, blur, multiplication by the map, imputation) and go
    /// through the model's own preprocessing; the score is the model's output for the class
    /// (the probability for a softmax head), as the papers use. Maps at a layer's resolution
    /// are upsampled bilinearly (half-pixel centres) to the input size.
    public func evaluate(
        imageData: Data, name: String, methods: [CAMMethod], metrics: Set<FaithfulnessMetric>,
        classChoice: String? = nil, layer: String? = nil, options: FaithfulnessOptions = FaithfulnessOptions(),
        limits: RenderLimits = RenderLimits()
    ) throws -> [EvaluationRow] {
        let pipeline = try imagePipeline()
        let (x, resized) = try pipeline.prepare(imageData, maxPixels: limits.maxImagePixels)
        let (h, w, c) = (resized.height, resized.width, resized.channels)
        let pixels = Tensor(shape: [1, h, w, c], scalars: resized.pixels.map(Float.init))
        let preprocessing = pipeline.preprocessing
        let toInput: (Tensor) throws -> Tensor = { t in
            Tensor(shape: t.shape, scalars: try preprocessing.apply(toPixels: t.scalars, channels: t.shape[3]))
        }
        let classIndex = try classChoice.map { try resolveClass($0) } ?? predict(x, top: 1)[0].classIndex
        let probe = FaithfulnessProbe(image: pixels, toInput: toInput, scoreNode: network.outputNode, classIndex: classIndex)
        var rows: [EvaluationRow] = []
        for method in methods {
            var request = HeatmapRequest()
            request.method = method
            request.classChoice = String(classIndex)
            request.layer = layer
            let started = Date()
            let map = try heatmap(request, input: .tensor(x), limits: limits).cam.map
            let mapped = Date()
            let saliency =
                map.height == h && map.width == w
                ? map.heatmap : try upsampleBilinear(map.heatmap, width: map.width, height: map.height, toWidth: w, toHeight: h)
            let scores = try network.faithfulness(of: saliency, probe: probe, metrics: metrics, options: options)
            rows.append(
                EvaluationRow(
                    image: name, method: method, classIndex: classIndex, label: label(of: classIndex), scores: scores,
                    mapSeconds: mapped.timeIntervalSince(started), metricSeconds: Date().timeIntervalSince(mapped)))
        }
        return rows
    }
}
