import ArgumentParser
import Engine
import Foundation
import KerasFormat

struct Activations: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one layer's raw output for an input (shape (N,H,W,C) or (N,C)).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "Input: a PNG/JPEG image, or a preprocessed .npy float32 array of shape (H,W,C) or (N,H,W,C).")
    var input: String

    @Option(name: .long, help: "Layer name (see `convlens summary`).")
    var layer: String

    @Option(name: .long, help: "Output format: npy or json.")
    var format: OutputFormat = .npy

    @Option(name: .short, help: "Output file (required for npy; json goes to stdout without it).")
    var o: String?

    func run() throws {
        let m = try model.load()
        let node = try resolveLayer(layer, in: m)
        let x = try readInput(input, for: m, options: inputOptions)
        // Stop right after the layer: nothing above it is computed.
        let trace = try m.network.forward(x, stopAfter: node)
        try writeTensor(trace[node]!, format: format, to: o)
    }
}
