import ArgumentParser
import Engine
import Foundation
import KerasFormat

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the model's layers: name, class, output shape, parameters, and whether the output is a spatial feature map (what the visualisations can show).")

    @OptionGroup var model: ModelOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let m = try model.load()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            FileHandle.standardOutput.write(try encoder.encode(m.keras.summary) + Data("\n".utf8))
        } else {
            print(m.keras.summaryTable())
        }
    }
}
