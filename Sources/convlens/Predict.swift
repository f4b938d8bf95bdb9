import ArgumentParser
import Engine
import Foundation
import KerasFormat

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the model on an input and print its top predictions.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "Input: a PNG/JPEG image, or a preprocessed .npy float32 array of shape (H,W,C) or (N,H,W,C).")
    var input: String

    @Option(name: .long, help: "How many predictions to list.")
    var top = 5

    @Flag(help: "Print JSON: {\"output\": [raw output vector], \"top\": [{\"class\", \"label\", \"score\"}]}.")
    var json = false

    func run() throws {
        guard top >= 1 else { throw CLIError("--top must be at least 1") }
        let m = try model.load()
        let x = try readInput(input, for: m, options: inputOptions)
        guard x.batch == 1 else { throw CLIError("predict takes one sample; \(input) holds \(x.batch)") }
        let y = try m.network.predict(x)
        let ranked = m.session.rank(y.scalars, top: top)
        if json {
            let topList: [[String: Any]] = ranked.map { p in
                var entry: [String: Any] = ["class": p.classIndex, "score": Double(p.score)]
                if let label = p.label { entry["label"] = label }
                return entry
            }
            let obj: [String: Any] = ["output": y.scalars.map { Double($0) }, "top": topList]
            FileHandle.standardOutput.write(try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) + Data("\n".utf8))
        } else {
            for (rank, p) in ranked.enumerated() {
                print(String(format: "%2d. class %5d  %.6f  %@", rank + 1, p.classIndex, p.score, p.label ?? ""))
            }
        }
    }
}
