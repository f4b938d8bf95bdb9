import ArgumentParser
import Engine
import Foundation
import Imaging
import KerasFormat
import Visualization

struct Gradient: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the gradient of one output unit with respect to a layer's output or the input.",
        discussion: """
            The unit is the model's final output k — before the softmax or sigmoid when the
            model ends in one (the logit: the Grad-CAM paper's class score, which does not
            saturate); --post-activation (alias --post-softmax) takes the probability.
            For a batch, each sample's gradient is of its own unit k.

            --class c instead of --output-index: class c of a classifier; of a segmentation
            model (a per-pixel output) the sum of class c's scores over the cells whose argmax is
            c in each sample, or over the cells --region covers (x0,y0,x1,y1 in the image's
            pixels). --target decrease differentiates the negated score (what lowers it).
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "Input: a PNG/JPEG image, or a preprocessed .npy float32 array of shape (H,W,C) or (N,H,W,C).")
    var input: String

    @Option(name: .customLong("output-index"), help: "Index k of the output unit (of the flattened output).")
    var outputIndex: Int?

    @Option(name: .customLong("class"), help: "A class (index or label): of a segmentation, scored over cells.")
    var classChoice: String?

    @Option(name: .long, help: "Segmentation: score the class over the cells this box covers, x0,y0,x1,y1 in image pixels.")
    var region: String?

    @Option(name: .long, help: "increase (default) or decrease: differentiate the negated score.")
    var target: TargetDirection = .increase

    @Option(name: .long, help: "Layer whose output the gradient is taken with respect to, or `input`.")
    var wrt: String

    @Flag(
        name: [.customLong("post-activation"), .customLong("post-softmax")],
        help: "Differentiate the probability (after the softmax or sigmoid head), not the logit.")
    var postActivation = false

    @Option(name: .long, help: "Output format: npy or json.")
    var format: TensorFormat = .npy

    @OptionGroup var numericsOptions: NumericsOptions

    @Option(name: .short, help: "Output file (required for npy; json goes to stdout without it).")
    var o: String?

    func run() throws {
        let m = try model.load(inputOptions)
        let wrtNode = try resolveLayer(wrt, in: m)
        let x = try readInput(input, for: m)
        let from = m.session.scoreNode(postActivation: postActivation)
        guard wrtNode < from else {
            throw CLIError("layer '\(wrt)' is not below the output; the gradient is taken w.r.t. an earlier layer")
        }
        // The forward and backward passes run under the asked numerics (plans are per numerics).
        let trace = try Numerics.scoped(numericsOptions.numerics) { try m.network.forward(x, stopAfter: from, backwardTo: wrtNode) }
        let score = trace[from]!
        let seed = try gradientSeed(score, session: m.session, input: x)
        let g = try Numerics.scoped(numericsOptions.numerics) { try m.network.backward(from: from, seed: seed, to: wrtNode, trace: trace) }
        try writeTensor(g, format: format, to: o)
    }

    /// The backward seed of every sample: unit k (`--output-index`), or the target of
    /// `--class` and `--region` resolved on each sample's own scores; negated for `--target decrease`.
    private func gradientSeed(_ score: Tensor, session: ModelSession, input x: Tensor) throws -> Tensor {
        let units = score.sampleCount
        guard (outputIndex == nil) != (classChoice == nil) else {
            throw CLIError("give one of --output-index (an output unit) or --class (a class, scored over cells on a segmentation)")
        }
        let sign: Float = target == .decrease ? -1 : 1
        if let outputIndex {
            guard region == nil else { throw CLIError("--region scores a class over cells: give it with --class, not --output-index") }
            guard outputIndex >= 0, outputIndex < units else {
                throw CLIError("--output-index \(outputIndex) is out of range: the output has \(units) units (0...\(units - 1))")
            }
            var seed = Tensor(zeros: score.shape)
            for n in 0..<score.batch { seed.scalars[n * units + outputIndex] = sign }
            return seed
        }
        let k = try session.resolveClass(classChoice!)
        let box = try region.map { try PixelRegion(parsing: $0) }
        let imageSize = try imageSize(fallback: (x.shape.count == 4 ? x.shape[2] : 0, x.shape.count == 4 ? x.shape[1] : 0))
        let selection: CAMTarget.Selection =
            session.hasPerPixelOutput
            ? .segment(classIndex: k, region: try box.map { try ImageRegion($0, imageWidth: imageSize.0, imageHeight: imageSize.1) })
            : .unit(k)
        if box != nil, !session.hasPerPixelOutput {
            throw CLIError("--region needs a segmentation model (a per-pixel output); this model's output is \(session.outputShape)")
        }
        var seed = Tensor(zeros: score.shape)
        for n in 0..<score.batch {
            let resolved = try CAMTarget(selection, decrease: target == .decrease).resolve(score, sample: n)
            for i in 0..<units { seed.scalars[n * units + i] = resolved.weights[i] }
        }
        return seed
    }

    /// The image's own size (a region is in its pixels), or a preprocessed input's.
    private func imageSize(fallback: (Int, Int)) throws -> (Int, Int) {
        guard case .image(let data) = try renderInput(input) else { return fallback }
        let photo = try decodeImage(data, options: DecodeOptions(maxPixels: RenderLimits().maxImagePixels, layout: .rgb))
        return (photo.width, photo.height)
    }
}
