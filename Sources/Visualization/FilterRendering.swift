import Engine
import Foundation
import Imaging
import KerasFormat

/// Which filter visualisation: the book's plain gradient ascent, the regularised lucid
/// method (Fourier image, decorrelated colour, jitter/scale/rotate, Adam), or `auto`: the
/// book where it leaves structure, lucid where it does not (`ModelSession.autoFilterMethod`).
/// A canonical request holds the concrete method `auto` resolved to.
public enum FilterMethod: String, Sendable, Codable, CaseIterable {
    case book, lucid, auto

    public var defaultSteps: Int { self == .book ? 40 : 256 }
}

/// What each image maximises: a channel's mean, or the unit at its centre.
public enum FilterObjective: String, Sendable, Codable, CaseIterable {
    case channel, neuron
}

/// The start image of a book ascent.
public enum FilterStart: String, Sendable, Codable, CaseIterable {
    /// The book's raw grey noise in model-input units.
    case book
    /// The same noise as pixels, then the model's preprocessing (and the step scaled alike).
    case grey
}

/// `GET /filters/{layer}/{index}`, `GET /filters/{layer}` and `convlens filters`: the
/// input that makes one filter, or each of a run of filters, fire strongest.
public struct FilterRequest: RenderRequest {
    public static let kind = "filters"

    /// A layer name or path (`vgg16/block3_conv1`).
    public var layer: String
    /// The first filter (the only one when `count` is 1).
    public var first = 0
    /// How many filters, as one grid; nil: from `first` up to 64 of them. Canonical: the number.
    public var count: Int? = 1
    /// Grid columns (the book: 8). Canonical: 1 for one filter.
    public var cols = 8
    public var method: FilterMethod = .book
    /// What each image maximises (lucid only; canonical: `channel` for the book).
    public var objective: FilterObjective = .channel
    /// nil: the method's default (book 40, lucid 256). Canonical: the number.
    public var steps: Int?
    public var step: Float = 1
    /// Side of the image (nil: 150, the book's, when the model takes any size; the model's
    /// own input size when it was saved with a fixed one). A fixed-input model draws at
    /// another size every layer before its first size-dependent layer (a Flatten); a later
    /// layer at another size is refused by name. Canonical: the height the picture has.
    public var size: Int?
    public var seed = 0
    /// The book's start image; nil: raw noise for models fed raw or caffe pixels, grey
    /// otherwise. Canonical: the choice made (nil for lucid, which has its own start).
    public var start: FilterStart?
    /// png: the picture; npy/json: the final float input images before deprocessing.
    public var format: OutputFormat = .png
    /// `fast`: the ascent's 3×3 convolutions may run Winograd (`Numerics`), a picture
    /// that differs from the exact one in rounding only. Not a query parameter: the
    /// server's `compute.numerics` or the command line's `--numerics` sets it.
    /// Canonical: nil for exact, so exact requests keep the addresses they had.
    public var numerics: Numerics?

    public static let stepsRange = 1...10_000
    public static let stepRange: ClosedRange<Float> = 0.001...1000
    public static let sizeRange = 8...1024
    public static let countRange = 1...1024
    public static let colsRange = 1...64
    public static let seedRange = 0...Int(UInt32.max)
    /// The grid a request without `count` gets, at most.
    public static let defaultGridCount = 64

    public init(layer: String, first: Int = 0, count: Int? = 1) {
        self.layer = layer
        self.first = first
        self.count = count
    }

    public func canonical(for session: ModelSession) throws -> FilterRequest {
        try canonical(for: session, anySizeDefault: 150)
    }

    /// The canonical request, with `anySizeDefault` as the size when none is given and the
    /// model takes any size (the server's `filters.size`).
    public func canonical(for session: ModelSession, anySizeDefault: Int) throws -> FilterRequest {
        var r = self
        if let steps { try RequestError.check("steps", steps, in: Self.stepsRange) }
        try RequestError.check("step", step, in: Self.stepRange)
        try RequestError.check("cols", cols, in: Self.colsRange)
        try RequestError.check("seed", seed, in: Self.seedRange)
        if let size { try RequestError.check("size", size, in: Self.sizeRange) }
        if let count { try RequestError.check("count", count, in: Self.countRange) }
        let summary = try session.layer(named: layer)
        // auto becomes the method it stands for here, so the address is the concrete method's.
        let method = method == .auto ? session.autoFilterMethod(for: summary) : method
        r.method = method
        let steps = steps ?? method.defaultSteps
        // A size the user gave is kept: a fixed-input model draws at it or refuses the layer,
        // which is said before anything else about the layer (a Dense's flat output, say).
        r.size = size ?? (session.hasFixedInputSize ? session.network.inputShape[0] : anySizeDefault)
        let (h, w) = session.filterImageSize(r)
        try session.checkInputSize(
            height: h, width: w, node: summary.nodeId, layer: summary.path, needsFeatureMap: method == .book && !summary.isSpatial)
        let target = try session.filterTarget(layer: layer, method: method)
        let channels = target.channels
        // `first` is checked on its own before `first + count` is formed: a huge index cannot overflow.
        guard first >= 0, first < channels else {
            // A grid's start is its `first` parameter; a single filter's is the path's index.
            let what = count == 1 ? "filter \(first)" : "first=\(first)"
            throw RequestError.outOfRange("\(what) out of range: '\(layer)' has \(channels) filters (0...\(channels - 1))")
        }
        let count = count ?? min(Self.defaultGridCount, channels - first)
        guard count <= channels - first else {
            throw RequestError.outOfRange(
                "filters \(first)..<\(first + count) out of range: '\(layer)' has \(channels) filters (0...\(channels - 1))")
        }
        r.layer = target.summary.path
        r.numerics = Numerics.canonical(numerics)
        r.count = count
        r.cols = count == 1 ? 1 : cols
        r.steps = steps
        if method == .book {
            r.objective = .channel
            r.start = start ?? (pixelUnit(session.pipeline?.preprocessing ?? .none) == 1 ? .book : .grey)
        } else {
            r.start = nil
        }
        return r
    }

    /// Server policy on top of the request's own ranges.
    public func check(maxSteps: Int, maxCount: Int) throws {
        if let steps { try RequestError.check("steps", steps, in: 1...maxSteps) }
        if let count { try RequestError.check("count", count, in: 1...maxCount) }
    }

    /// The URL that answers this request (canonical requests only): the job's result link.
    public var resultPath: String {
        let layerSegment =
            layer.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? layer
        var query = "method=\(method.rawValue)&steps=\(steps ?? method.defaultSteps)&step=\(step)&seed=\(seed)&size=\(size ?? 150)"
        if method == .lucid { query += "&objective=\(objective.rawValue)" }
        if format != .png { query += "&format=\(format.rawValue)" }
        return count == 1
            ? "/filters/\(layerSegment)/\(first)?\(query)"
            : "/filters/\(layerSegment)?first=\(first)&count=\(count ?? 1)&cols=\(cols)&\(query)"
    }

    /// One line saying what the job computes.
    public var summary: String {
        count == 1
            ? "\(method.rawValue) visualisation of filter \(first) of \(layer)"
            : "\(method.rawValue) grid of filters \(first)..<\(first + (count ?? 1)) of \(layer)"
    }
}

extension FilterRequest {
    public func render(
        on session: ModelSession, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        try session.render(self, progress: progress)
    }

    public static var jobKinds: [String] { ["filter", "filter_grid"] }

    /// Always a job: one filter ahead of a grid, a grid nobody waits on (pre-rendering,
    /// `background`) behind both.
    public func jobPolicy(address: ContentAddress, background: Bool) -> JobPolicy? {
        JobPolicy(
            kind: count == 1 ? "filter" : "filter_grid",
            priority: background && count != 1 ? .bulk : (count == 1 ? .interactive : .grid),
            steps: steps ?? method.defaultSteps, summary: summary, resultPath: resultPath)
    }

    /// Its memory at its peak (`ModelSession.memoryEstimate`) against `limits.maxRequestBytes`.
    public func checkCost(on session: ModelSession, limits: RenderLimits) throws {
        try session.checkCost(self, limits: limits)
    }
}

/// Progress of a filter visualisation: the step just finished and the mean objective.
public struct FilterProgress: Sendable, Equatable {
    public var step: Int
    public var steps: Int
    public var meanLoss: Float

    public init(step: Int, steps: Int, meanLoss: Float) {
        self.step = step
        self.steps = steps
        self.meanLoss = meanLoss
    }
}

public struct FilterRendering: Sendable {
    /// The final float input images [n, h, w, c] before deprocessing.
    public var images: Tensor
    /// The picture: one filter at its size, or a grid.
    public var picture: Image
}

extension ModelSession {
    /// The node a filter visualisation maximises, whether it is spatial and how many
    /// filters it has. Throws for an unknown layer (with the valid names), the input, and
    /// a flat layer where the method needs a feature map.
    func filterTarget(layer name: String, method: FilterMethod) throws -> (summary: LayerSummary, node: Int, spatial: Bool, channels: Int) {
        let summary = try layer(named: name)
        guard summary.nodeId > 0 else { throw RequestError.unsupported("the input layer has no filters") }
        guard summary.isSpatial || method == .lucid else {
            throw RequestError.notSpatial(layer: name, shape: summary.outputShape)
        }
        var node = summary.nodeId
        // A class unit is maximised before its softmax (a softmax can rise by pushing other classes down).
        if !summary.isSpatial, node == network.outputNode, keras.head == .softmax, let logits = keras.logitsNode { node = logits }
        return (summary, node, summary.isSpatial, summary.outputShape.last ?? 0)
    }

    /// Renders a filter request to PNG (the picture), NPY or JSON (`{"shape", "data"}`
    /// of the final float images). `progress` is called after every step; returning false
    /// cancels (throws `VisualizationError.cancelled`).
    public func render(
        _ request: FilterRequest, startImage: Tensor? = nil, sequential: Bool = false,
        progress: (FilterProgress) -> Bool = { _ in true }
    ) throws -> Rendered {
        let r = try request.canonical(for: self)
        let rendering = try renderFilters(r, startImage: startImage, sequential: sequential, progress: progress)
        let facts = [
            Fact("Layer", r.layer), Fact("Filters", "\(r.first)..<\(r.first + (r.count ?? 1))"), Fact("Method", r.method.rawValue),
            Fact("Steps", String(r.steps ?? 0)), Fact("Size", "\(rendering.images.shape[1])x\(rendering.images.shape[2])"),
        ]
        switch r.format {
        case .png: return Rendered(body: try encodePNG(rendering.picture), format: .png, facts: facts)
        case .npy: return Rendered(body: rendering.images.npyData(), format: .npy, facts: facts)
        case .json: return Rendered(body: try jsonDocument(TensorDocument(rendering.images)), format: .json, facts: facts)
        }
    }

    /// Runs a filter visualisation. `startImage` (book only; [1, h, w, c] or [h, w, c] in
    /// model-input units) replaces the noise start for every filter — a command-line
    /// option, not part of the request's identity. `sequential` optimises the filters one
    /// at a time instead of as one batch (same result, for timing).
    public func renderFilters(
        _ request: FilterRequest, startImage: Tensor? = nil, sequential: Bool = false,
        progress: (FilterProgress) -> Bool = { _ in true }
    ) throws -> FilterRendering {
        let r = try request.canonical(for: self)
        let (_, node, spatial, _) = try filterTarget(layer: r.layer, method: r.method)
        let (h, w) = filterImageSize(r)
        let network = try filterNetwork(height: h, width: w)
        let inputShape = network.inputShape
        let c = inputShape[2]
        let n = r.count ?? 1
        let steps = r.steps ?? r.method.defaultSteps
        let filters = Array(r.first..<(r.first + n))
        let preprocessing = pipeline?.preprocessing ?? .none
        // Only the ascent's own convolutions take the request's numerics.
        func ascending<T>(_ body: () throws -> T) rethrows -> T {
            try Numerics.scoped(r.numerics, body)
        }
        func report(step: Int, steps: Int, losses: [Float]) -> Bool {
            progress(FilterProgress(step: step, steps: steps, meanLoss: losses.reduce(0, +) / Float(max(1, losses.count))))
        }
        if r.method == .lucid {
            let objectives: [LucidObjective] = filters.map {
                !spatial ? .unit($0) : (r.objective == .neuron ? .neuron($0) : .channel($0))
            }
            var parameters = LucidParameters(steps: steps, seed: UInt64(r.seed))
            if inputShape[0] == -1 || inputShape[1] == -1 { parameters.size = (h, w) }
            let result = try ascending {
                try network.lucidVisualization(
                    layerNode: node, objectives: objectives, inputMap: LucidInputMap(preprocessing: preprocessing),
                    parameters: parameters, progress: { report(step: $0.step, steps: $0.steps, losses: $0.losses) })
            }
            let cells = try lucidImages(result.images)
            let columns = min(r.cols, cells.count)
            let picture =
                n == 1
                ? cells[0]
                : try composeGrid(
                    cells, rows: GridLayout.rows(for: n, cols: columns), cols: columns,
                    margin: 5, background: [0])
            return FilterRendering(images: result.images, picture: picture)
        }
        // The book works in VGG16's input units (caffe: pixels minus means), where a step of
        // 1.0 is one grey level. For a model fed scaled pixels ((x − 127)/128 for the bundled
        // one) the same grey noise is preprocessed first and the step scaled alike, so the
        // ascent moves pixels by the book's amount instead of saturating the input.
        var stepSize = r.step
        let one: Tensor
        if let startImage {
            let t = startImage.rank == 3 ? startImage.reshaped([1] + startImage.shape) : startImage
            guard t.shape == [1, h, w, c] else {
                throw RequestError.unsupported("the start image has shape \(startImage.shape); expected (\(h), \(w), \(c))")
            }
            one = t
        } else {
            let noise = Network.bookStartImages(count: 1, height: h, width: w, channels: c, seed: UInt64(r.seed))
            if r.start == .grey {
                one = try preprocessPixels(noise, preprocessing)
                stepSize *= pixelUnit(preprocessing)
            } else {
                one = noise
            }
        }
        let parameters = FilterAscentParameters(steps: steps, stepSize: stepSize, size: h)
        func ascentProgress(_ p: AscentProgress) -> Bool { report(step: p.step, steps: p.steps, losses: p.losses) }
        var images: Tensor
        if sequential {
            images = Tensor.concatenateBatches(
                try filters.map { f in
                    try ascending {
                        try network.bookFilterAscent(
                            layerNode: node, filters: [f], start: one, parameters: parameters, progress: ascentProgress
                        ).images
                    }
                })
        } else {
            // Every filter starts from the same image.
            let start = Tensor.concatenateBatches(Array(repeating: one, count: n))
            images = try ascending {
                try network.bookFilterAscent(
                    layerNode: node, filters: filters, start: start,
                    parameters: parameters, progress: ascentProgress
                ).images
            }
        }
        var shown = images
        // caffe-preprocessed models see BGR: show the pattern in RGB.
        if preprocessing == .caffe, c == 3 { shown = swapRB(shown) }
        let picture = n == 1 ? try filterImages(shown)[0] : try filterGrid(shown, cols: r.cols)
        return FilterRendering(images: images, picture: picture)
    }
}

/// A tensor as JSON: `{"shape": [...], "data": [...]}`.
public struct TensorDocument: Codable, Sendable {
    public var shape: [Int]
    public var data: [Float]

    public init(_ t: Tensor) {
        shape = t.shape
        data = t.scalars
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
    Tensor(shape: t.shape, scalars: try p.apply(toPixels: t.scalars, channels: t.shape.last ?? 1))
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
