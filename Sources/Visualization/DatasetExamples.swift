import Engine
import Foundation
import Imaging

/// The dataset examples of a unit, as OpenAI Microscope shows them next to a feature
/// visualisation: the images of a collection that excite one channel most, each cropped to
/// the receptive field of the position where the channel peaks in that image.
public struct UnitExample: Sendable, Codable, Equatable {
    /// The image's name in the collection.
    public var image: String
    /// The channel's largest activation in that image, and where (feature-map row, column).
    public var value: Float
    public var row: Int
    public var column: Int
    /// The receptive field of that position in the model-input image: inclusive pixel bounds
    /// [top, left, bottom, right].
    public var box: [Int]
}

/// Top-k examples of every channel of some spatial layers over a collection of images:
/// one forward pass per image, and per channel a k-entry list, never every activation.
public struct DatasetIndex: Sendable, Codable, Equatable {
    public var k: Int
    public var images: [String]
    /// Each image's own size [width, height] in pixels (before the model's resize), in
    /// the order of `images`: what a box is mapped back to.
    public var sizes: [[Int]]
    /// Layer name → per channel, its examples by decreasing value (at most k, one per image).
    public var layers: [String: [[UnitExample]]]

    public init(k: Int, images: [String] = [], sizes: [[Int]] = [], layers: [String: [[UnitExample]]] = [:]) {
        self.k = k
        self.images = images
        self.sizes = sizes
        self.layers = layers
    }
}

extension ModelSession {
    /// Adds one image to `index` for `layers` (names; spatial): its forward pass keeps only
    /// those layers' outputs, and each channel's peak enters that channel's top-k.
    public func addToDatasetIndex(
        _ index: inout DatasetIndex, name: String, imageData: Data, layers: [String], limits: RenderLimits = RenderLimits()
    )
        throws
    {
        let pipeline = try imagePipeline()
        let photo = try decodeImage(imageData, options: DecodeOptions(maxPixels: limits.maxImagePixels, layout: .rgb))
        let (x, _) = try pipeline.prepare(photo)
        let summaries = try layers.map { try spatialLayer(named: $0) }
        let nodes = Set(summaries.map(\.nodeId))
        let trace = try network.forward(x, stopAfter: nodes.max() ?? 0, keep: nodes)
        let fields = try network.receptiveFields(height: pipeline.height, width: pipeline.width)
        for layer in summaries {
            guard let a = trace[layer.nodeId], a.rank == 4, let field = fields[layer.nodeId] else {
                throw RequestError.notSpatial(layer: layer.name, shape: trace[layer.nodeId]?.sampleShape ?? [])
            }
            let (h, w, c) = (a.shape[1], a.shape[2], a.shape[3])
            var best = [Float](repeating: -.infinity, count: c)
            var at = [Int](repeating: 0, count: c)
            a.scalars.withUnsafeBufferPointer { s in
                for p in 0..<(h * w) {
                    for ch in 0..<c where s[p * c + ch] > best[ch] {
                        best[ch] = s[p * c + ch]
                        at[ch] = p
                    }
                }
            }
            var channels = index.layers[layer.name] ?? Array(repeating: [], count: c)
            for ch in 0..<c {
                let (row, column) = (at[ch] / w, at[ch] % w)
                guard let box = field.box(row: row, column: column) else { continue }
                let example = UnitExample(
                    image: name, value: best[ch], row: row, column: column, box: [box.top, box.left, box.bottom, box.right])
                var list = channels[ch]
                // Sorted insertion into a list of at most k: the index stays k × channels.
                let slot = list.firstIndex { $0.value < example.value } ?? list.count
                if slot < index.k {
                    list.insert(example, at: slot)
                    if list.count > index.k { list.removeLast() }
                    channels[ch] = list
                }
            }
            index.layers[layer.name] = channels
        }
        if !index.images.contains(name) {
            index.images.append(name)
            index.sizes.append([photo.width, photo.height])
        }
    }

    /// A strip of one channel's examples: each image prepared as for the model, cropped to the
    /// example's receptive field and scaled to `patch` × `patch` pixels, left to right by value.
    public func examplesStrip(_ examples: [UnitExample], image: (String) throws -> Data, patch: Int = 96) throws -> Image {
        guard !examples.isEmpty else { throw RequestError.badParameter(name: "examples", value: "none", allowed: "at least one example") }
        let pipeline = try imagePipeline()
        let cells = try examples.map { e -> Image in
            let (_, resized) = try pipeline.prepare(try image(e.image))
            let crop = try resized.cropped(to: PixelBox(x0: e.box[1], y0: e.box[0], x1: e.box[3] + 1, y1: e.box[2] + 1))
            return try crop.resized(width: patch, height: patch, filter: .bilinear)
        }
        return try composeGrid(
            cells, rows: 1, cols: cells.count, margin: 4, outerMargin: true, background: [255],
            labels: examples.map { String(format: "%.2f", $0.value) }, labelColour: [0])
    }
}
