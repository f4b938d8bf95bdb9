import ArgumentParser
import Foundation
import Imaging
import Visualization

struct Examples: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The images of a folder that excite a filter most, cropped to its receptive field.",
        discussion: """
            Dataset examples, as OpenAI Microscope shows them beside a feature visualisation:
            one forward pass per image; for the filter (channel) --index of --layer, the
            images where it peaks highest, each cropped to the receptive field of the peak
            (from the layer graph: kernel sizes, strides, paddings, every branch) and labelled
            with the activation. PNG strip, or JSON (images, values, positions, boxes in
            model-input pixels).

            Examples:
              convlens examples --images public/samples --layer block3a_expand_activation --index 7 -o ex.png
              convlens examples --images photos/ --layer top_activation --index 12 --k 5 --format json
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "A folder of PNG/JPEG images.")
    var images: String

    @Option(name: .long, help: "A spatial layer.")
    var layer: String

    @Option(name: .long, help: "The filter (channel) of the layer.")
    var index: Int

    @Option(name: .long, help: "How many examples (1...64).")
    var k = 9

    @Option(name: .long, help: "Side of each example in the strip, in pixels (16...512).")
    var patch = 96

    @Option(name: .long, help: "png or json.")
    var format: OutputFormat = .png

    @Option(name: .short, help: "Output file (required for png; json goes to stdout without it).")
    var o: String?

    func run() throws {
        guard (1...64).contains(k) else { throw CLIError("--k must be in 1...64") }
        guard (16...512).contains(patch) else { throw CLIError("--patch must be in 16...512") }
        guard format != .npy else { throw CLIError("--format is png or json") }
        guard format == .json || o != nil else { throw CLIError("-o FILE is needed for a PNG") }
        let m = try model.load(inputOptions)
        let summary = try m.session.spatialLayer(named: layer)
        let channels = summary.outputShape.last ?? 0
        guard index >= 0, index < channels else { throw CLIError("--index \(index) is outside 0..<\(channels) of '\(layer)'") }
        let folder = URL(fileURLWithPath: images)
        let names = try FileManager.default.contentsOfDirectory(atPath: images).sorted()
            .filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }
        guard !names.isEmpty else { throw CLIError("no PNG or JPEG images in \(images)") }
        var index = DatasetIndex(k: k)
        let started = Date()
        for name in names {
            try m.session.addToDatasetIndex(
                &index, name: name, imageData: Data(contentsOf: folder.appendingPathComponent(name)), layers: [summary.name])
        }
        let examples = index.layers[summary.name]?[self.index] ?? []
        printErr(
            "\(names.count) image(s) indexed in \(String(format: "%.1f", Date().timeIntervalSince(started))) s; \(examples.count) example(s)"
        )
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let body = try encoder.encode(examples)
            if let o { try body.write(to: URL(fileURLWithPath: o)) } else { print(String(decoding: body, as: UTF8.self)) }
        default:
            let strip = try m.session.examplesStrip(
                examples, image: { try Data(contentsOf: folder.appendingPathComponent($0)) }, patch: patch)
            try encodePNG(strip).write(to: URL(fileURLWithPath: o!))
        }
    }
}
