import ArgumentParser
import Engine
import Foundation
import Imaging
import KerasFormat
import Visualization

struct Filters: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a filter looks for: the input that makes it fire strongest (gradient ascent).",
        discussion: """
            book: Deep Learning with Python §5.4 exactly — start from grey noise
            (uniform [0,1) × 20 + 128, seeded), 40 steps of x += g / (rms(g) + 1e-5),
            loss = the mean of the filter's channel; 150×150 when the model takes any size.
            A grid (--count N) optimises the N filters as one batch of N images.

            Examples:
              convlens filters --model vgg16.h5 --layer block3_conv1 --index 7 -o f.png
              convlens filters --model vgg16.h5 --layer block1_conv1 --count 64 -o grid.png
            """)

    @OptionGroup var model: ModelOptions

    @Option(name: .long, help: "Convolutional layer (see `convlens summary`).")
    var layer: String

    @Option(name: .long, help: "One filter's index (default 0 unless --count is given).")
    var index: Int?

    @Option(name: .long, help: "Grid of the first N filters (from --index, default 0).")
    var count: Int?

    @Option(name: .long, help: "Method: book (the book's plain ascent) or lucid (Fourier image, decorrelated colour, random jitter/scale/rotation, Adam — recognisable patterns in deep layers too).")
    var method: FilterMethod = .book

    @Option(name: .long, help: "What each image maximises (lucid): channel (its mean) or neuron (the centre unit). A flat (Dense) layer's unit is used as is.")
    var objective: String = "channel"

    @Option(name: .long, help: "Ascent steps (default: book 40, lucid 256).")
    var steps: Int?

    @Option(name: .long, help: "Step size.")
    var step: Float = 1

    @Option(name: .long, help: "Image size (when the model takes any size; otherwise the model's input size).")
    var size: Int?

    @Option(name: .long, help: "Seed of the start image.")
    var seed: UInt64 = 0

    @Option(name: .customLong("init"), help: ArgumentHelp(
        "Start image: book (the book's raw grey noise in model-input units), grey (the same noise as pixels, then the model's preprocessing), or a .npy float32 (H,W,C) used for every filter. Default: book for models fed raw or caffe pixels, grey otherwise.",
        valueName: "book|grey|file.npy"))
    var init_: String?

    @Flag(name: .long, help: "Optimise the filters one at a time instead of as one batch (same result; for timing the batching).")
    var sequential = false

    @Option(name: .long, help: "Grid columns (the book: 8).")
    var cols = 8

    @Option(name: .long, help: "png: the picture; npy/json: the final float input images before deprocessing.")
    var format: PictureFormat = .png

    @Option(name: .short, help: "Output file (required for png and npy; json goes to stdout without it).")
    var o: String?

    func run() throws {
        let steps = self.steps ?? (method == .book ? 40 : 256)
        guard (1...10_000).contains(steps) else { throw CLIError("--steps must be in 1...10000, got \(steps)") }
        guard ["channel", "neuron"].contains(objective) else { throw CLIError("--objective must be channel or neuron, got '\(objective)'") }
        let m = try model.load()
        var node = try resolveLayer(layer, in: m)
        guard let summary = m.keras.layers.first(where: { $0.nodeId == node }) else { throw CLIError("no layer named '\(layer)'") }
        guard summary.isSpatial || method == .lucid else {
            throw CLIError("layer '\(layer)' has no spatial feature map; choose a convolutional layer (or --method lucid for a Dense unit)")
        }
        // A class unit is maximised before its softmax (a softmax can rise by pushing other classes down).
        if !summary.isSpatial, node == m.network.outputNode, let logits = m.keras.logitsNode { node = logits }
        let channels = summary.outputShape.last!
        let first = index ?? 0
        let n = count ?? 1
        guard n >= 1, first >= 0, first + n <= channels else {
            throw CLIError("filters \(first)..<\(first + n) are out of range: '\(layer)' has \(channels) filters (0...\(channels - 1))")
        }
        let inputShape = m.network.inputShape
        let side = size ?? (inputShape[0] == -1 ? 150 : inputShape[0])
        guard (8...1024).contains(side) else { throw CLIError("--size must be in 8...1024, got \(side)") }
        let (h, w, c) = (inputShape[0] == -1 ? side : inputShape[0], inputShape[1] == -1 ? side : inputShape[1], inputShape[2])
        // The book works in VGG16's input units (caffe: pixels minus means), where a step of
        // 1.0 is one grey level. For a model fed scaled pixels ((x − 127)/128 for the bundled
        // one) the same grey noise is preprocessed first and the step scaled alike, so the
        // ascent moves pixels by the book's amount instead of saturating the input.
        let pipeline = try InputPipeline(profile: m.profile, model: m.keras)
        let unit = pixelUnit(pipeline.preprocessing)
        let initMode = init_ ?? (unit == 1 ? "book" : "grey")
        var stepSize = step
        let one: Tensor
        switch initMode {
        case "book":
            one = Network.bookStartImages(count: 1, height: h, width: w, channels: c, seed: seed)
        case "grey":
            let noise = Network.bookStartImages(count: 1, height: h, width: w, channels: c, seed: seed)
            one = try preprocessPixels(noise, pipeline.preprocessing)
            stepSize *= unit
        default:
            var t = try Tensor.readNPY(contentsOf: URL(fileURLWithPath: initMode))
            if t.rank == 3 { t = t.reshaped([1] + t.shape) }
            guard t.shape == [1, h, w, c] else { throw CLIError("--init \(initMode) has shape \(t.shape); expected (\(h), \(w), \(c))") }
            one = t
        }
        // Every filter starts from the same image.
        let start = Tensor.concatenateBatches(Array(repeating: one, count: n))
        let began = Date()
        var lastReport = Date.distantPast
        let filters = Array(first..<(first + n))
        if method == .lucid {
            let objectives: [LucidObjective] = filters.map {
                !summary.isSpatial ? .unit($0) : (objective == "neuron" ? .neuron($0) : .channel($0))
            }
            var parameters = LucidParameters(steps: steps, seed: seed)
            if inputShape[0] == -1 || inputShape[1] == -1 { parameters.size = (h, w) }
            let result = try m.network.lucidVisualization(
                layerNode: node, objectives: objectives, inputMap: LucidInputMap(preprocessing: pipeline.preprocessing),
                parameters: parameters, progress: { p in
                    if Date().timeIntervalSince(lastReport) > 1 || p.step == p.steps, Date().timeIntervalSince(began) > 1 {
                        lastReport = Date()
                        printErr(String(format: "step %d/%d  mean objective %.4f  (%.1f s)", p.step, p.steps,
                                        p.losses.reduce(0, +) / Float(p.losses.count), Date().timeIntervalSince(began)))
                    }
                    return true
                })
            printErr(String(format: "%d filter(s) of %@, lucid, %d steps at %d×%d: %.2f s", n, layer, steps, h, w, Date().timeIntervalSince(began)))
            switch format {
            case .npy: try writeTensor(result.images, format: .npy, to: o)
            case .json: try writeTensor(result.images, format: .json, to: o)
            case .png:
                let cells = try lucidImages(result.images)
                let columns = min(cols, cells.count)
                try writePNG(n == 1 ? cells[0] : try composeGrid(cells, rows: GridLayout.rows(for: n, cols: columns), cols: columns,
                                                                 margin: 5, background: [0]), to: o)
            }
            return
        }
        let progress: (AscentProgress) -> Bool = { p in
            if Date().timeIntervalSince(lastReport) > 1 || p.step == p.steps, Date().timeIntervalSince(began) > 1 {
                lastReport = Date()
                let mean = p.losses.reduce(0, +) / Float(p.losses.count)
                printErr(String(format: "step %d/%d  mean loss %.4f  (%.1f s)", p.step, p.steps, mean, Date().timeIntervalSince(began)))
            }
            return true
        }
        let parameters = FilterAscentParameters(steps: steps, stepSize: stepSize, size: h)
        let images: Tensor
        if sequential {
            images = Tensor.concatenateBatches(try filters.map { f in
                try m.network.bookFilterAscent(layerNode: node, filters: [f], start: one, parameters: parameters,
                                               progress: progress).images
            })
        } else {
            images = try m.network.bookFilterAscent(layerNode: node, filters: filters, start: start,
                                                    parameters: parameters, progress: progress).images
        }
        printErr(String(format: "%d filter(s) of %@, %d steps at %d×%d: %.2f s%@", n, layer, steps, h, w,
                        Date().timeIntervalSince(began), sequential ? " (one at a time)" : " (one batch)"))
        switch format {
        case .npy: try writeTensor(images, format: .npy, to: o)
        case .json: try writeTensor(images, format: .json, to: o)
        case .png:
            var images = images
            // caffe-preprocessed models see BGR: show the pattern in RGB.
            if pipeline.preprocessing == .caffe, c == 3 { images = swapRB(images) }
            try writePNG(n == 1 ? try filterImages(images)[0] : try filterGrid(images, cols: cols), to: o)
        }
    }
}

enum FilterMethod: String, ExpressibleByArgument, CaseIterable {
    case book, lucid
}

/// How far one grey level moves a model input under this preprocessing (per-channel
/// scales differ slightly for torch; their mean is used).
func pixelUnit(_ p: Preprocessing) -> Float {
    switch p {
    case .caffe, .none: return 1
    case .tf: return 1 / 127.5
    case .scale: return 1 / 255
    case .torch: return 1 / (255 * (Preprocessing.torchStd.reduce(0, +) / 3))
    case .affine(let scale, _): return abs(scale)
    }
}

/// Applies an input preprocessing to float pixels [n, h, w, c] in 0...255.
func preprocessPixels(_ t: Tensor, _ p: Preprocessing) throws -> Tensor {
    var out = t
    let c = t.shape.last!
    switch p {
    case .none: break
    case .tf: for i in 0..<t.count { out.scalars[i] = t.scalars[i] / 127.5 - 1 }
    case .scale: for i in 0..<t.count { out.scalars[i] = t.scalars[i] / 255 }
    case .affine(let scale, let offset): for i in 0..<t.count { out.scalars[i] = t.scalars[i] * scale + offset }
    case .caffe:
        guard c == 3 else { throw CLIError("caffe preprocessing needs 3 channels") }
        let m = Preprocessing.caffeMeanBGR
        for i in stride(from: 0, to: t.count, by: 3) {
            out.scalars[i] = t.scalars[i + 2] - m[0]
            out.scalars[i + 1] = t.scalars[i + 1] - m[1]
            out.scalars[i + 2] = t.scalars[i] - m[2]
        }
    case .torch:
        guard c == 3 else { throw CLIError("torch preprocessing needs 3 channels") }
        for i in 0..<t.count {
            let k = i % 3
            out.scalars[i] = (t.scalars[i] / 255 - Preprocessing.torchMean[k]) / Preprocessing.torchStd[k]
        }
    }
    return out
}

/// Reverses the channel order of [n, h, w, 3] (BGR ↔ RGB).
func swapRB(_ t: Tensor) -> Tensor {
    var out = t
    for p in stride(from: 0, to: t.count, by: 3) {
        out.scalars[p] = t.scalars[p + 2]
        out.scalars[p + 2] = t.scalars[p]
    }
    return out
}
