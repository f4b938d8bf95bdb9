import ArgumentParser
import Engine
import Foundation
import KerasFormat
import Visualization

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "List the model's layers: name, class, output shape, parameters, and whether the output is a spatial feature map (what the visualisations can show)."
    )

    @OptionGroup var model: ModelOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let m = try model.load()
        let camLayer = defaultCAMLayer(of: m.keras)
        if json {
            struct Output: Encodable {
                let summary: ModelSummary
                let defaultCAMLayer: String?
                func encode(to encoder: any Encoder) throws {
                    try summary.encode(to: encoder)
                    enum Key: String, CodingKey { case default_cam_layer }
                    var c = encoder.container(keyedBy: Key.self)
                    try c.encode(defaultCAMLayer, forKey: .default_cam_layer)
                }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let out = Output(summary: m.keras.summary, defaultCAMLayer: camLayer?.path)
            FileHandle.standardOutput.write(try encoder.encode(out) + Data("\n".utf8))
        } else {
            print(m.keras.summaryTable(), terminator: "")
            print("Default Grad-CAM layer: \(camLayer?.path ?? "none (no spatial layer)")")
            if let pipeline = try? m.session.imagePipeline() {
                let size = pipeline.ownSize ? "each photo at its own size (the model resizes it)" : "\(pipeline.width)×\(pipeline.height)"
                print(
                    "Photos go in: \(pipeline.layout), \(size); preprocessing \(pipeline.preprocessing) — \(pipeline.preprocessingSource)")
            }
        }
    }
}
