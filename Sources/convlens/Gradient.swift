import ArgumentParser
import Engine
import Foundation
import KerasFormat

struct Gradient: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the gradient of one output unit with respect to a layer's output or the input.",
        discussion: """
            The unit is the model's final output k — before the softmax or sigmoid when the
            model ends in one (the logit: the Grad-CAM paper's class score, which does not
            saturate); --post-activation (alias --post-softmax) takes the probability.
            For a batch, each sample's gradient is of its own unit k.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "Input: a PNG/JPEG image, or a preprocessed .npy float32 array of shape (H,W,C) or (N,H,W,C).")
    var input: String

    @Option(name: .customLong("output-index"), help: "Index k of the output unit.")
    var outputIndex: Int

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
        let target = try resolveLayer(wrt, in: m)
        let x = try readInput(input, for: m)
        let from = m.session.scoreNode(postActivation: postActivation)
        guard target < from else {
            throw CLIError("layer '\(wrt)' is not below the output; the gradient is taken w.r.t. an earlier layer")
        }
        // The forward and backward passes run under the asked numerics (plans are per numerics).
        let trace = try Numerics.scoped(numericsOptions.numerics) { try m.network.forward(x, stopAfter: from, backwardTo: target) }
        let score = trace[from]!
        let units = score.sampleCount
        guard outputIndex >= 0, outputIndex < units else {
            throw CLIError("--output-index \(outputIndex) is out of range: the output has \(units) units (0...\(units - 1))")
        }
        var seed = Tensor(zeros: score.shape)
        for n in 0..<score.batch { seed.scalars[n * units + outputIndex] = 1 }
        let g = try Numerics.scoped(numericsOptions.numerics) { try m.network.backward(from: from, seed: seed, to: target, trace: trace) }
        try writeTensor(g, format: format, to: o)
    }
}
