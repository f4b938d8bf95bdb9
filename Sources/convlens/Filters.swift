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
            loss = the mean of the filter's channel; 150×150 when the model takes any size
            (--size S for another size, also for a model saved with a fixed input).
            A grid (--count N) optimises the N filters as one batch of N images.

            Examples:
              convlens filters --model vgg16.h5 --layer block3_conv1 --index 7 -o f.png
              convlens filters --model vgg16.h5 --layer block1_conv1 --count 64 -o grid.png
              convlens filters --model vgg16_include_top.h5 --layer block3_conv1 --size 150 -o f.png
            """)

    @OptionGroup var model: ModelOptions

    @Option(name: .long, help: "Convolutional layer (see `convlens summary`).")
    var layer: String

    @Option(name: .long, help: "One filter's index (default 0 unless --count is given).")
    var index: Int?

    @Option(name: .long, help: "Grid of the first N filters (from --index, default 0).")
    var count: Int?

    @Option(
        name: .long,
        help:
            "Method: book (the book's plain ascent), lucid (Fourier image, decorrelated colour, random jitter/scale/rotation, Adam — recognisable patterns in deep layers too), or auto (the book for the first convolutions, lucid deeper; see docs/cli.md, Filter methods)."
    )
    var method: FilterMethod = .book

    @Option(
        name: .long,
        help:
            "What each image maximises (lucid): channel (its mean) or neuron (the centre unit). A flat (Dense) layer's unit is used as is.")
    var objective: String = "channel"

    @Option(name: .long, help: "Ascent steps (default: book 40, lucid 256).")
    var steps: Int?

    @Option(name: .long, help: "Step size.")
    var step: Float = 1

    @Option(
        name: .long,
        help:
            "Image size (default: 150 when the model takes any size, else its input size). A model saved with a fixed input draws every layer before its first size-dependent one (a Flatten) at any size; a later layer is refused by name."
    )
    var size: Int?

    @Option(name: .long, help: "Seed of the start image.")
    var seed = 0

    @Option(
        name: .customLong("init"),
        help: ArgumentHelp(
            "Start image: book (the book's raw grey noise in model-input units), grey (the same noise as pixels, then the model's preprocessing), or a .npy float32 (H,W,C) used for every filter. Default: book for models fed raw or caffe pixels, grey otherwise.",
            valueName: "book|grey|file.npy"))
    var init_: String?

    @Flag(name: .long, help: "Optimise the filters one at a time instead of as one batch (same result; for timing the batching).")
    var sequential = false

    @Option(name: .long, help: "Grid columns (the book: 8).")
    var cols = 8

    @OptionGroup var numericsOptions: NumericsOptions

    @Option(name: .long, help: "png: the picture; npy/json: the final float input images before deprocessing.")
    var format: OutputFormat = .png

    @Option(name: .short, help: "Output file (required for png and npy; json goes to stdout without it).")
    var o: String?

    func run() throws {
        guard let objectiveKind = FilterObjective(rawValue: objective) else {
            throw CLIError("--objective must be channel or neuron, got '\(objective)'")
        }
        let m = try model.load()
        var request = FilterRequest(layer: layer, first: index ?? 0, count: count ?? 1)
        request.method = method
        request.objective = objectiveKind
        request.steps = steps
        request.step = step
        request.size = size
        request.seed = seed
        request.cols = cols
        request.format = format
        request.numerics = numericsOptions.numerics
        var startImage: Tensor?
        switch init_ {
        case nil: break
        case "book": request.start = .book
        case "grey": request.start = .grey
        case let path?: startImage = try Tensor.readNPY(contentsOf: URL(fileURLWithPath: path))
        }
        // What auto resolved to (and the filled-in steps and size) before anything is drawn.
        let canonical = try request.canonical(for: m.session)
        let began = Date()
        var lastReport = Date.distantPast
        let progress: (FilterProgress) -> Bool = { p in
            if Date().timeIntervalSince(lastReport) > 1 || p.step == p.steps, Date().timeIntervalSince(began) > 1 {
                lastReport = Date()
                printErr(
                    String(
                        format: "step %d/%d  mean %@ %.4f  (%.1f s)", p.step, p.steps,
                        canonical.method == .book ? "loss" : "objective", p.meanLoss, Date().timeIntervalSince(began)))
            }
            return true
        }
        // The server refuses a request by this estimate (compute.max_request_bytes); the CLI only says it.
        let estimate = try m.session.memoryEstimate(canonical)
        let rendered = try m.session.render(canonical, startImage: startImage, sequential: sequential, progress: progress)
        let how = canonical.method == .lucid ? "lucid" : (sequential ? "book, one at a time" : "book, one batch")
        printErr(
            String(
                format: "%d filter(s) of %@, %d steps at %@ (%@): %.2f s; memory estimate %@ (%ld bytes)", canonical.count ?? 1,
                layer, canonical.steps ?? 0, rendered[fact: "Size"] ?? "\(canonical.size ?? 0)", how, Date().timeIntervalSince(began),
                MemoryEstimate.describe(estimate.bytes), estimate.bytes))
        try write(rendered, to: o)
    }
}

extension FilterMethod: ExpressibleByArgument {}
extension Numerics: ExpressibleByArgument {}
