import Engine
import Foundation
import Imaging

/// A heatmap computed for a canonical `HeatmapRequest`, before encoding.
public struct HeatmapResult: Sendable {
    public var cam: CAMResult
    /// The layer the map is at, or `input` for pixel attributions.
    public var layer: String
    public var label: String?
    /// `logit`, `probability` or `output` (a model without a softmax or sigmoid head).
    public var scoreKind: String
    /// The top predictions, ranked from the CAM's own forward pass where it has them.
    public var predictions: [Prediction]
    public var probability: Float?
    /// The photo the overlay is drawn on (nil for a preprocessed input).
    public var photo: Image?
    /// The model input's size, where a heatmap without a photo is drawn.
    public var inputSize: (width: Int, height: Int)
}

extension ModelSession {
    /// Computes a heatmap: decode and prepare the image, run the method, rank the predictions.
    public func heatmap(_ request: HeatmapRequest, input: RenderInput, limits: RenderLimits = RenderLimits()) throws -> HeatmapResult {
        let r = try request.canonical(for: self)
        let channels = try r.layer.map { try spatialLayer(named: $0).outputShape.last ?? 0 } ?? 0
        let options = CAMOptions(eigenSmooth: r.eigenSmooth, augSmooth: r.augSmooth)
        let methodPasses = r.method.passes(options: options, layerChannels: channels)
        let metricPasses = r.metrics.reduce(0) { $0 + $1.passes() }
        let passes = methodPasses + metricPasses
        guard passes <= limits.maxHeatmapPasses else {
            let metrics = metricPasses > 0 ? " and the metrics \(metricPasses)" : ""
            throw RequestError.tooCostly(
                "\(r.method.rawValue) at '\(r.layer ?? "input")' costs \(methodPasses) model passes\(metrics); this server allows \(limits.maxHeatmapPasses) per heatmap (server.max_heatmap_passes): choose a layer with fewer channels, another method or fewer metrics"
            )
        }
        let (x, photo) = try prepare(input, limits: limits)
        // Pixel attributions read no layer (canonical: nil).
        let layer = try r.layer.map { try spatialLayer(named: $0) }
        let scoreNode = scoreNode(postActivation: r.postActivation)
        let classIndex = r.classChoice.flatMap(Int.init)
        let cam = try network.classActivationMap(
            x, CAMRequest(layerNode: layer?.nodeId ?? defaultCAMLayer?.nodeId ?? 0, scoreNode: scoreNode, classIndex: classIndex),
            method: r.method, options: options)
        let map = cam.map
        // The CAM's forward pass already gave every score: rank those instead of a second pass.
        let predictions =
            map.scores.count == classCount
            ? rank(outputs(fromScores: map.scores, at: scoreNode), top: r.top)
            : try predict(x, top: r.top)
        let pipeline = try imagePipeline()
        return HeatmapResult(
            cam: cam, layer: cam.resolution == .layer ? layer?.name ?? "input" : "input", label: label(of: map.classIndex),
            scoreKind: scoreKind(postActivation: r.postActivation),
            predictions: predictions, probability: predictions.first { $0.classIndex == map.classIndex }?.score,
            photo: photo, inputSize: (pipeline.width, pipeline.height))
    }

    /// A heatmap as PNG (overlay or map), NPY (the map at its own resolution) or JSON
    /// (the map, the class, the top predictions).
    public func render(_ request: HeatmapRequest, input: RenderInput, limits: RenderLimits = RenderLimits()) throws -> Rendered {
        let r = try request.canonical(for: self)
        // The request's numerics cover every model pass it makes: the map's and the metrics'.
        return try Numerics.scoped(r.numerics) { try renderCanonical(r, input: input, limits: limits) }
    }

    private func renderCanonical(_ r: HeatmapRequest, input: RenderInput, limits: RenderLimits) throws -> Rendered {
        let result = try heatmap(r, input: input, limits: limits)
        let map = result.cam.map
        var facts = [Fact("Class", String(map.classIndex))]
        if let label = result.label { facts.append(Fact("Label", label)) }
        facts += [Fact("Score", String(map.score)), Fact("Score-Kind", result.scoreKind)]
        if let p = result.probability { facts.append(Fact("Probability", String(p))) }
        facts += [Fact("Layer", result.layer), Fact("Method", r.method.rawValue)]
        facts += Fact.numerics(r.numerics)
        if let c = result.cam.completeness {
            facts += [Fact("Attribution-Sum", String(c.attributionSum)), Fact("Score-Difference", String(c.scoreDifference))]
        }
        var metrics: FaithfulnessScores?
        if !r.metrics.isEmpty {
            let probe = try faithfulnessProbe(input, classIndex: map.classIndex, limits: limits)
            let scores = try faithfulness(of: map, probe: probe, metrics: Set(r.metrics))
            facts += scores.facts
            metrics = scores
        }
        switch r.format {
        case .npy:
            return Rendered(body: Tensor(shape: [map.height, map.width], scalars: map.heatmap).npyData(), format: .npy, facts: facts)
        case .json:
            let body = HeatmapDocument(
                class: map.classIndex, label: result.label, score: map.score, probability: result.probability,
                layer: result.layer, method: r.method.rawValue, height: map.height, width: map.width,
                heatmap: map.heatmap, top: result.predictions, metrics: metrics)
            return Rendered(body: try jsonDocument(body), format: .json, facts: facts)
        case .png:
            let picture: Image
            switch r.show {
            case .heatmap:
                let size = result.photo.map { ($0.width, $0.height) } ?? result.inputSize
                picture = try camHeatmapImage(
                    map, width: size.0, height: size.1, colormap: r.colormap,
                    displayPercentile: r.displayPercentile)
            case .overlay:
                guard let photo = result.photo else {
                    throw RequestError.unsupported(
                        "an overlay needs a photo; a preprocessed input can show the heatmap alone (show=heatmap)")
                }
                let base = try fitted(photo, maxPixels: limits.maxOverlayPixels)
                if base.width != photo.width { facts.append(Fact("Overlay-Size", "\(base.width)x\(base.height)")) }
                picture = try camOverlay(map, on: base, alpha: r.alpha, colormap: r.colormap, displayPercentile: r.displayPercentile)
            }
            return Rendered(body: try encodePNG(picture, fast: true), format: .png, facts: facts)
        }
    }
}

/// The photo scaled down (bilinear, aspect kept) so it has at most `maxPixels` pixels:
/// an overlay costs memory and time in proportion to its pixels, and a small upload can
/// decode to a huge picture.
public func fitted(_ photo: Image, maxPixels: Int) throws -> Image {
    let pixels = photo.width * photo.height
    guard pixels > maxPixels, maxPixels > 0 else { return photo }
    let scale = (Double(maxPixels) / Double(pixels)).squareRoot()
    let w = max(1, Int(Double(photo.width) * scale))
    let h = max(1, Int(Double(photo.height) * scale))
    return try photo.resized(width: w, height: h, filter: .bilinear)
}

/// The JSON answer of a heatmap request.
struct HeatmapDocument: Encodable {
    var `class`: Int
    var label: String?
    var score: Float
    var probability: Float?
    var layer: String
    var method: String
    var height: Int
    var width: Int
    /// Row-major, normalised to [0, 1], at the layer's own resolution (before upsampling).
    var heatmap: [Float]
    var top: [Prediction]
    /// With `metrics=`: the faithfulness scores (and the deletion/insertion curves).
    var metrics: FaithfulnessScores?
}
