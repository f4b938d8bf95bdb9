import Engine
import Foundation
import Imaging
import KerasFormat

/// Which filter visualisation: the book's plain gradient ascent, or the
/// regularised lucid method (Fourier image, decorrelated colour, jitter/scale/rotate, Adam).
public enum FilterMethod: String, Sendable, Codable, CaseIterable {
    case book, lucid

    public var defaultSteps: Int { self == .book ? 40 : 256 }
}

/// What each image maximises: a channel's mean, or the unit at its centre.
public enum FilterObjective: String, Sendable, Codable, CaseIterable {
    case channel, neuron
}

/// The start image of a book ascent.
public enum FilterStart: Sendable {
    /// The book's raw grey noise in model-input units.
    case book
    /// The same noise as pixels, then the model's preprocessing (and the step scaled alike).
    case grey
    /// A float image [1, h, w, c] in model-input units, used for every filter.
    case image(Tensor)
}

/// One filter visualisation request: everything the picture depends on.
/// Ranges are checked by `validate` — the limits are what a server can promise to finish.
public struct FilterSpec: Sendable {
    public var layer: String
    public var first: Int
    public var count: Int
    public var method: FilterMethod
    public var objective: FilterObjective
    public var steps: Int
    public var stepSize: Float
    /// Side of the image when the model takes any size (default 150, the book's).
    public var size: Int?
    public var seed: UInt64
    /// nil: the book's noise for models fed raw or caffe pixels, grey otherwise.
    public var start: FilterStart?
    public var cols: Int

    public static let stepRange = 1...10_000
    public static let sizeRange = 8...1024
    public static let countRange = 1...1024

    public init(layer: String, first: Int = 0, count: Int = 1, method: FilterMethod = .book,
                objective: FilterObjective = .channel, steps: Int? = nil, stepSize: Float = 1,
                size: Int? = nil, seed: UInt64 = 0, start: FilterStart? = nil, cols: Int = 8) {
        self.layer = layer
        self.first = first
        self.count = count
        self.method = method
        self.objective = objective
        self.steps = steps ?? method.defaultSteps
        self.stepSize = stepSize
        self.size = size
        self.seed = seed
        self.start = start
        self.cols = cols
    }
}

/// Progress of a filter visualisation: the step just finished and the mean objective.
public struct FilterProgress: Sendable, Equatable {
    public var step: Int
    public var steps: Int
    public var meanLoss: Float
}

public struct FilterRendering: Sendable {
    /// The final float input images [n, h, w, c] before deprocessing.
    public var images: Tensor
    /// The picture: one filter at its size, or a grid.
    public var picture: Image
}

extension ModelSession {
    /// The resolved target of a filter spec: the node to maximise and whether it is spatial.
    /// Throws for an unknown layer (with the valid names), a flat layer where the method needs
    /// a feature map, filters out of range, and parameters outside their ranges.
    public func validate(_ spec: FilterSpec) throws -> (node: Int, spatial: Bool, height: Int, width: Int) {
        guard FilterSpec.stepRange.contains(spec.steps) else {
            throw VisualizationError.invalid("steps must be in \(FilterSpec.stepRange.lowerBound)...\(FilterSpec.stepRange.upperBound), got \(spec.steps)")
        }
        guard spec.stepSize.isFinite, spec.stepSize > 0, spec.stepSize <= 1000 else {
            throw VisualizationError.invalid("step must be in (0, 1000], got \(spec.stepSize)")
        }
        if let size = spec.size, !FilterSpec.sizeRange.contains(size) {
            throw VisualizationError.invalid("size must be in \(FilterSpec.sizeRange.lowerBound)...\(FilterSpec.sizeRange.upperBound), got \(size)")
        }
        guard FilterSpec.countRange.contains(spec.count) else {
            throw VisualizationError.invalid("count must be in \(FilterSpec.countRange.lowerBound)...\(FilterSpec.countRange.upperBound), got \(spec.count)")
        }
        guard (1...64).contains(spec.cols) else { throw VisualizationError.invalid("cols must be in 1...64, got \(spec.cols)") }
        let summary = try layer(named: spec.layer)
        guard summary.nodeId > 0 else { throw VisualizationError.invalid("the input layer has no filters") }
        guard summary.isSpatial || spec.method == .lucid else {
            throw VisualizationError.notSpatial(layer: spec.layer, shape: summary.outputShape)
        }
        var node = summary.nodeId
        // A class unit is maximised before its softmax (a softmax can rise by pushing other classes down).
        if !summary.isSpatial, node == network.outputNode, let logits = keras.logitsNode { node = logits }
        let channels = summary.outputShape.last ?? 0
        guard spec.first >= 0, spec.first + spec.count <= channels else {
            let asked = spec.count == 1 ? "filter \(spec.first)" : "filters \(spec.first)..<\(spec.first + spec.count)"
            throw VisualizationError.outOfRange("\(asked) out of range: '\(spec.layer)' has \(channels) filters (0...\(channels - 1))")
        }
        let inputShape = network.inputShape
        let side = spec.size ?? (inputShape[0] == -1 ? 150 : inputShape[0])
        let h = inputShape[0] == -1 ? side : inputShape[0]
        let w = inputShape[1] == -1 ? side : inputShape[1]
        return (node, summary.isSpatial, h, w)
    }

    /// Runs a filter visualisation. `progress` is called after every step; returning
    /// false cancels (throws `VisualizationError.cancelled`). `sequential` optimises the
    /// filters one at a time instead of as one batch (same result, for timing).
    public func renderFilters(_ spec: FilterSpec, sequential: Bool = false,
                              progress: (FilterProgress) -> Bool = { _ in true }) throws -> FilterRendering {
        let (node, spatial, h, w) = try validate(spec)
        let c = network.inputShape[2]
        let filters = Array(spec.first..<(spec.first + spec.count))
        let n = spec.count
        let preprocessing = pipeline?.preprocessing ?? .none
        if spec.method == .lucid {
            let objectives: [LucidObjective] = filters.map {
                !spatial ? .unit($0) : (spec.objective == .neuron ? .neuron($0) : .channel($0))
            }
            var parameters = LucidParameters(steps: spec.steps, seed: spec.seed)
            if network.inputShape[0] == -1 || network.inputShape[1] == -1 { parameters.size = (h, w) }
            let result = try network.lucidVisualization(
                layerNode: node, objectives: objectives, inputMap: LucidInputMap(preprocessing: preprocessing),
                parameters: parameters, progress: { p in
                    progress(FilterProgress(step: p.step, steps: p.steps, meanLoss: p.losses.reduce(0, +) / Float(max(1, p.losses.count))))
                })
            let cells = try lucidImages(result.images)
            let columns = min(spec.cols, cells.count)
            let picture = n == 1 ? cells[0] : try composeGrid(cells, rows: GridLayout.rows(for: n, cols: columns), cols: columns,
                                                               margin: 5, background: [0])
            return FilterRendering(images: result.images, picture: picture)
        }
        // The book works in VGG16's input units (caffe: pixels minus means), where a step of
        // 1.0 is one grey level. For a model fed scaled pixels ((x − 127)/128 for the bundled
        // one) the same grey noise is preprocessed first and the step scaled alike, so the
        // ascent moves pixels by the book's amount instead of saturating the input.
        let unit = pixelUnit(preprocessing)
        var stepSize = spec.stepSize
        let one: Tensor
        switch spec.start ?? (unit == 1 ? .book : .grey) {
        case .book:
            one = Network.bookStartImages(count: 1, height: h, width: w, channels: c, seed: spec.seed)
        case .grey:
            let noise = Network.bookStartImages(count: 1, height: h, width: w, channels: c, seed: spec.seed)
            one = try preprocessPixels(noise, preprocessing)
            stepSize *= unit
        case .image(let t):
            let t = t.rank == 3 ? t.reshaped([1] + t.shape) : t
            guard t.shape == [1, h, w, c] else {
                throw VisualizationError.invalid("the start image has shape \(t.shape); expected (\(h), \(w), \(c))")
            }
            one = t
        }
        func report(_ p: AscentProgress) -> Bool {
            progress(FilterProgress(step: p.step, steps: p.steps, meanLoss: p.losses.reduce(0, +) / Float(max(1, p.losses.count))))
        }
        let parameters = FilterAscentParameters(steps: spec.steps, stepSize: stepSize, size: h)
        var images: Tensor
        if sequential {
            images = Tensor.concatenateBatches(try filters.map { f in
                try network.bookFilterAscent(layerNode: node, filters: [f], start: one, parameters: parameters, progress: report).images
            })
        } else {
            // Every filter starts from the same image.
            let start = Tensor.concatenateBatches(Array(repeating: one, count: n))
            images = try network.bookFilterAscent(layerNode: node, filters: filters, start: start,
                                                  parameters: parameters, progress: report).images
        }
        var shown = images
        // caffe-preprocessed models see BGR: show the pattern in RGB.
        if preprocessing == .caffe, c == 3 { shown = swapRB(shown) }
        let picture = n == 1 ? try filterImages(shown)[0] : try filterGrid(shown, cols: spec.cols)
        return FilterRendering(images: images, picture: picture)
    }
}

/// How far one grey level moves a model input under this preprocessing (per-channel
/// scales differ slightly for torch; their mean is used).
public func pixelUnit(_ p: Preprocessing) -> Float {
    switch p {
    case .caffe, .none: return 1
    case .tf: return 1 / 127.5
    case .scale: return 1 / 255
    case .torch: return 1 / (255 * (Preprocessing.torchStd.reduce(0, +) / 3))
    case .affine(let scale, _): return abs(scale)
    }
}

/// Applies an input preprocessing to float pixels [n, h, w, c] in 0...255.
public func preprocessPixels(_ t: Tensor, _ p: Preprocessing) throws -> Tensor {
    var out = t
    let c = t.shape.last!
    switch p {
    case .none: break
    case .tf: for i in 0..<t.count { out.scalars[i] = t.scalars[i] / 127.5 - 1 }
    case .scale: for i in 0..<t.count { out.scalars[i] = t.scalars[i] / 255 }
    case .affine(let scale, let offset): for i in 0..<t.count { out.scalars[i] = t.scalars[i] * scale + offset }
    case .caffe:
        guard c == 3 else { throw VisualizationError.invalid("caffe preprocessing needs 3 channels") }
        let m = Preprocessing.caffeMeanBGR
        for i in stride(from: 0, to: t.count, by: 3) {
            out.scalars[i] = t.scalars[i + 2] - m[0]
            out.scalars[i + 1] = t.scalars[i + 1] - m[1]
            out.scalars[i + 2] = t.scalars[i] - m[2]
        }
    case .torch:
        guard c == 3 else { throw VisualizationError.invalid("torch preprocessing needs 3 channels") }
        for i in 0..<t.count {
            let k = i % 3
            out.scalars[i] = (t.scalars[i] / 255 - Preprocessing.torchMean[k]) / Preprocessing.torchStd[k]
        }
    }
    return out
}

/// Reverses the channel order of [n, h, w, 3] (BGR ↔ RGB).
public func swapRB(_ t: Tensor) -> Tensor {
    var out = t
    for p in stride(from: 0, to: t.count, by: 3) {
        out.scalars[p] = t.scalars[p + 2]
        out.scalars[p + 2] = t.scalars[p]
    }
    return out
}
