import ArgumentParser
import Engine
import Foundation
import KerasFormat
import Visualization

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the model on an input and print its top predictions.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "Input: a PNG/JPEG image, or a preprocessed .npy float32 array of shape (H,W,C) or (N,H,W,C).")
    var input: String

    @Option(name: .long, help: "How many predictions to list.")
    var top = 5

    @OptionGroup var numericsOptions: NumericsOptions

    @Flag(help: "Print JSON: {\"model\", \"output\": [raw output vector], \"top\": [{\"class\", \"label\", \"score\"}]}.")
    var json = false

    func run() throws {
        let m = try model.load(inputOptions)
        let request = PredictRequest(top: top, output: json, numerics: numericsOptions.numerics)
        if json {
            try write(try m.session.render(request, input: try renderInput(input)), to: nil)
            return
        }
        for (rank, p) in try m.session.predictions(request, input: try renderInput(input)).top.enumerated() {
            print(String(format: "%2d. class %5d  %.6f  %@", rank + 1, p.classIndex, p.score, p.label ?? ""))
        }
    }
}
