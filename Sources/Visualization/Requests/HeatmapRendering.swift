import Engine
import Foundation
import Imaging

/// A heatmap computed for a canonical `HeatmapRequest`, before encoding: one map per
/// class asked for (one unless `classes` names several).
public struct HeatmapResult: Sendable {
    public var cams: [CAMResult]
    /// The map of the first (or only) class.
    public var cam: CAMResult { cams[0] }
    /// The layer the map is at, or `input` for pixel attributions.
    public var layer: String
    /// The first map's class label.
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
        try r.checkCost(on: self, limits: limits)
        return try heatmap(canonical: r, input: input, limits: limits)
    }

    /// `heatmap(_:input:limits:)` of a canonical request whose cost is checked.
    private func heatmap(canonical r: HeatmapRequest, input: RenderInput, limits: RenderLimits) throws -> HeatmapResult {
        let options = CAMOptions(eigenSmooth: r.eigenSmooth, augSmooth: r.augSmooth)
        let (x, photo) = try prepare(input, limits: limits)
        // Pixel attributions read no layer (canonical: nil).
        let layer = try r.layer.map { try spatialLayer(named: $0) }
        let scoreNode = scoreNode(postActivation: r.postActivation)
        let cams = try network.classActivationMaps(
            x,
            CAMRequest(
                layerNode: layer?.nodeId ?? defaultCAMLayer?.nodeId ?? 0, scoreNode: scoreNode,
                targets: try targets(r, input: x, photo: photo)),
            method: r.method, options: options)
        let map = cams[0].map
        // The CAM's forward pass already gave every score: rank those instead of a second pass.
        let predictions =
            (hasPerPixelOutput ? map.scores.count % max(classCount, 1) == 0 : map.scores.count == classCount) && !map.scores.isEmpty
            ? rankClasses(outputs(fromScores: map.scores, at: scoreNode), top: r.top)
            : try predict(x, top: r.top)
        let pipeline = try imagePipeline()
        return HeatmapResult(
            cams: cams, layer: cams[0].resolution == .layer ? layer?.name ?? "input" : "input", label: label(of: map.classIndex),
            scoreKind: scoreKind(postActivation: r.postActivation),
            predictions: predictions, probability: predictions.first { $0.classIndex == map.classIndex }?.score,
            photo: photo, inputSize: (pipeline.width, pipeline.height))
    }

    /// The targets of a canonical request, one per class: a class of a classifier or a
    /// regression's unit, or of a segmentation its cells (the argmax's, or the region's, the
    /// region given in the photo's pixels — the input's for a preprocessed input).
    func targets(_ r: HeatmapRequest, input x: Tensor, photo: Image?) throws -> [CAMTarget] {
        let region = try r.region.map { box in
            try ImageRegion(
                box, imageWidth: photo?.width ?? (x.rank == 4 ? x.shape[2] : 0),
                imageHeight: photo?.height ?? (x.rank == 4 ? x.shape[1] : 0))
        }
        let classes: [Int?] = r.classes.map { $0.map { Int($0) } } ?? [r.classChoice.flatMap(Int.init)]
        let decrease = r.target == .decrease
        return classes.map { k in
            CAMTarget(hasPerPixelOutput ? .segment(classIndex: k, region: region) : .unit(k), decrease: decrease)
        }
    }

    /// A heatmap as PNG (overlay or map), NPY (the map at its own resolution) or JSON
    /// (the map, the class, the top predictions).
    fileprivate func renderHeatmap(_ r: HeatmapRequest, input: RenderInput, limits: RenderLimits) throws -> Rendered {
        // The request's numerics cover every model pass it makes: the map's and the metrics'.
        return try Numerics.scoped(r.numerics) { try renderCanonical(r, input: input, limits: limits) }
    }

    private func renderCanonical(_ r: HeatmapRequest, input: RenderInput, limits: RenderLimits) throws -> Rendered {
        let result = try heatmap(canonical: r, input: input, limits: limits)
        if result.cams.count > 1 { return try renderSeveral(r, result, limits: limits) }
        let map = result.cam.map
        var facts = [Fact("Class", String(map.classIndex))]
        if let label = result.label { facts.append(Fact("Label", label)) }
        facts += [Fact("Score", String(map.score)), Fact("Score-Kind", result.scoreKind)]
        if let p = result.probability { facts.append(Fact("Probability", String(p))) }
        facts += [Fact("Layer", result.layer), Fact("Method", r.method.rawValue)]
        facts += targetFacts(r, result.cam.target)
        facts += Fact.numerics(r.numerics)
        if let c = result.cam.completeness {
            facts += [Fact("Attribution-Sum", String(c.attributionSum)), Fact("Score-Difference", String(c.scoreDifference))]
        }
        var metrics: FaithfulnessScores?
        if !r.metrics.isEmpty {
            let target = result.cam.target.map { CAMTarget(.resolved($0)) } ?? .classIndex(map.classIndex)
            let probe = try faithfulnessProbe(input, target: target, limits: limits)
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
                heatmap: map.heatmap, top: result.predictions, metrics: metrics, target: r.target?.rawValue,
                region: r.region?.description, cells: result.cam.target?.cells)
            return Rendered(body: try jsonDocument(body), format: .json, facts: facts)
        case .png:
            let picture = try heatmapPicture(map, r, result, limits: limits, facts: &facts)
            return Rendered(body: try encodePNG(picture, fast: true), format: .png, facts: facts)
        }
    }

    /// Several classes' maps: a grid of pictures side by side, labelled with each class; an
    /// NPY of the maps stacked [n, h, w]; or a JSON document with one map per class.
    private func renderSeveral(_ r: HeatmapRequest, _ result: HeatmapResult, limits: RenderLimits) throws -> Rendered {
        let maps = result.cams.map(\.map)
        var facts = [
            Fact("Classes", maps.map { String($0.classIndex) }.joined(separator: ",")),
            Fact("Scores", maps.map { String($0.score) }.joined(separator: ",")),
            Fact("Score-Kind", result.scoreKind), Fact("Layer", result.layer), Fact("Method", r.method.rawValue),
        ]
        facts += targetFacts(r, nil)
        facts += Fact.numerics(r.numerics)
        let (h, w) = (maps[0].height, maps[0].width)
        switch r.format {
        case .npy:
            return Rendered(
                body: Tensor(shape: [maps.count, h, w], scalars: maps.flatMap(\.heatmap)).npyData(), format: .npy, facts: facts)
        case .json:
            let body = SeveralHeatmapsDocument(
                layer: result.layer, method: r.method.rawValue, height: h, width: w, target: r.target?.rawValue,
                region: r.region?.description,
                maps: zip(maps, result.cams).map { map, cam in
                    ClassHeatmap(
                        class: map.classIndex, label: label(of: map.classIndex), score: map.score,
                        probability: result.predictions.first { $0.classIndex == map.classIndex }?.score, cells: cam.target?.cells,
                        heatmap: map.heatmap)
                },
                top: result.predictions)
            return Rendered(body: try jsonDocument(body), format: .json, facts: facts)
        case .png:
            var ignored: [Fact] = []
            let tiles = try maps.map { try heatmapPicture($0, r, result, limits: limits, facts: &ignored) }
            if let size = ignored.first(where: { $0.name == "Overlay-Size" }) { facts.append(size) }
            let labels = maps.map { map in "\(map.classIndex)" + (label(of: map.classIndex).map { " \($0)" } ?? "") }
            let cols = min(maps.count, 4)
            let grid = try composeGrid(
                tiles, rows: GridLayout.rows(for: tiles.count, cols: cols), cols: cols, margin: 4, background: [255],
                labels: labels, labelColour: [0])
            return Rendered(body: try encodePNG(grid, fast: true), format: .png, facts: facts)
        }
    }

    /// The overlay or the coloured map alone of one map, as `show` asks.
    private func heatmapPicture(
        _ map: ClassActivationMap, _ r: HeatmapRequest, _ result: HeatmapResult, limits: RenderLimits, facts: inout [Fact]
    ) throws -> Image {
        switch r.show {
        case .heatmap:
            let size = result.photo.map { ($0.width, $0.height) } ?? result.inputSize
            return try camHeatmapImage(
                map, width: size.0, height: size.1, colormap: r.colormap,
                displayPercentile: r.displayPercentile)
        case .overlay:
            guard let photo = result.photo else {
                throw RequestError.unsupported(
                    "an overlay needs a photo; a preprocessed input can show the heatmap alone (show=heatmap)")
            }
            let base = try fitted(photo, maxPixels: limits.maxOverlayPixels)
            if base.width != photo.width { facts.append(Fact("Overlay-Size", "\(base.width)x\(base.height)")) }
            return try camOverlay(map, on: base, alpha: r.alpha, colormap: r.colormap, displayPercentile: r.displayPercentile)
        }
    }

    /// What a map explains beyond its class: `Target: decrease`, the region and the cells scored.
    private func targetFacts(_ r: HeatmapRequest, _ target: ResolvedTarget?) -> [Fact] {
        var facts: [Fact] = []
        if let t = r.target { facts.append(Fact("Target", t.rawValue)) }
        if let region = r.region { facts.append(Fact("Region", region.description)) }
        if let cells = target?.cells { facts.append(Fact("Target-Cells", String(cells))) }
        return facts
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
    /// `decrease` when the map explains what lowers the score.
    var target: String?
    /// The region of the image whose cells were scored (a segmentation).
    var region: String?
    /// A segmentation's cells scored.
    var cells: Int?
}

/// The JSON answer of a heatmap request for several classes: one map each.
struct SeveralHeatmapsDocument: Encodable {
    var layer: String
    var method: String
    /// Every map's size.
    var height: Int
    var width: Int
    var target: String?
    var region: String?
    var maps: [ClassHeatmap]
    var top: [Prediction]
}

/// One class's map in a `SeveralHeatmapsDocument`.
struct ClassHeatmap: Encodable {
    var `class`: Int
    var label: String?
    var score: Float
    var probability: Float?
    var cells: Int?
    /// Row-major, normalised to [0, 1], at the map's own resolution.
    var heatmap: [Float]
}

extension HeatmapRequest {
    /// Refuses a heatmap whose model passes (the method's at the layer, and its metrics')
    /// exceed `limits.maxHeatmapPasses`.
    public func checkCost(on session: ModelSession, limits: RenderLimits) throws {
        let (methodPasses, metricPasses) = try passesOfMethodAndMetrics(on: session)
        guard methodPasses + metricPasses <= limits.maxHeatmapPasses else {
            let metrics = metricPasses > 0 ? " and the metrics \(metricPasses)" : ""
            throw RequestError.tooCostly(
                "\(method.rawValue) at '\(layer ?? "input")' costs \(methodPasses) model passes\(metrics); this server allows \(limits.maxHeatmapPasses) per heatmap (server.max_heatmap_passes): choose a layer with fewer channels, another method or fewer metrics"
            )
        }
    }

    public func passes(on session: ModelSession) throws -> Int {
        let (method, metrics) = try passesOfMethodAndMetrics(on: session)
        return method + metrics
    }

    private func passesOfMethodAndMetrics(on session: ModelSession) throws -> (method: Int, metrics: Int) {
        let channels = try layer.map { try session.spatialLayer(named: $0).outputShape.last ?? 0 } ?? 0
        let options = CAMOptions(eigenSmooth: eigenSmooth, augSmooth: augSmooth)
        return (
            method.passes(options: options, layerChannels: channels, targets: classes?.count ?? 1),
            metrics.reduce(0) { $0 + $1.passes() }
        )
    }

    /// Renders a canonical request whose cost is checked (`checkCost(on:limits:)`).
    public func render(
        on session: ModelSession, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        try session.renderHeatmap(self, input: try required(input), limits: limits)
    }
}
