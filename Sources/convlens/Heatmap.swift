import ArgumentParser
import Engine
import Foundation
import Imaging
import KerasFormat
import Visualization

struct Heatmap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show where in an image the evidence for a class lies (Grad-CAM and its family).",
        discussion: """
            Grad-CAM as in Deep Learning with Python §5.4: the class score's gradient at a
            convolutional layer weights that layer's channels; the weighted map, ReLU'd and
            scaled to [0, 1], is coloured (jet) and added to the image: overlay = heatmap × alpha + image.
            The class score is the logit (the Grad-CAM paper); --post-softmax uses the
            probability, as the book does. Default layer: the last convolution's output
            that is still spatial, after its own BatchNorm/activation.

            Examples:
              convlens heatmap --input cat.jpg -o overlay.png
              convlens heatmap --input cat.jpg --class 281 --method gradcam++ --show heatmap -o h.png
              convlens heatmap --input cat.jpg --format json        # the map at the layer's resolution
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "Input image (PNG/JPEG), or a preprocessed .npy (then --show heatmap).")
    var input: String

    @Option(name: .long, help: "Method: \(CAMMethod.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: CAMMethod = .gradcam

    @Option(name: .customLong("class"), help: "Class index or label (default: the top prediction).")
    var classChoice: String?

    @Option(name: .long, help: "Layer whose feature map is weighted (default: the last spatial conv output).")
    var layer: String?

    @Flag(name: .customLong("post-softmax"), help: "Use the softmax probability as the class score (the book).")
    var postSoftmax = false

    @Option(name: .long, help: "Heatmap weight in the overlay, 0...1 (the book: 0.4).")
    var alpha: Float = 0.4

    @Option(name: .long, help: "Colormap: jet (the book), turbo, viridis, magma, inferno, grey.")
    var colormap: Colormap = .jet

    @Option(name: .customLong("display-percentile"), help: ArgumentHelp(
        "Draw the map scaled to this percentile instead of its maximum (default: 99 for the saliency family, whose maps are peaked; none for CAMs).",
        valueName: "p"))
    var displayPercentile: Float?

    @Option(name: .long, help: "png: a picture; npy/json: the map at the layer's own resolution, in [0, 1].")
    var format: PictureFormat = .png

    @Option(name: .long, help: "What the PNG shows: overlay (heatmap on the image) or heatmap (coloured map alone, image size).")
    var show: HeatmapView = .overlay

    @Option(name: .short, help: "Output file (required for png and npy; json goes to stdout without it).")
    var o: String?

    func run() throws {
        guard (0...1).contains(alpha) else { throw CLIError("--alpha must be in 0...1, got \(alpha)") }
        let m = try model.load()
        let pipeline = try inputOptions.pipeline(for: m)
        let x: Tensor
        var photo: Image?
        if input.lowercased().hasSuffix(".npy") {
            x = try readInput(input, for: m, options: inputOptions)
        } else {
            let data = try Data(contentsOf: URL(fileURLWithPath: input))
            // The overlay is drawn on the original photo (the book does the same), the
            // heatmap stretched back over it the way the photo was stretched to the model's input.
            let original = try decodeImage(data, options: DecodeOptions(layout: .rgb))
            (x, photo) = (try pipeline.prepare(original).input, original)
        }
        let layerSummary: LayerSummary
        if let layer {
            _ = try resolveLayer(layer, in: m)
            guard let s = m.keras.layer(named: layer) else { throw CLIError("no layer named '\(layer)'") }
            layerSummary = s
        } else {
            guard let s = defaultCAMLayer(of: m.keras) else { throw CLIError("the model has no spatial convolutional layer for a heatmap") }
            layerSummary = s
        }
        guard layerSummary.isSpatial else {
            throw CLIError("layer '\(layerSummary.name)' has output shape \(layerSummary.outputShape), not a spatial feature map; choose a convolutional layer")
        }
        let scoreNode = scoreNode(of: m, postSoftmax: postSoftmax)
        let classIndex = try classChoice.map { try m.session.resolveClass($0) }
        let result = try m.network.classActivationMap(
            x, CAMRequest(layerNode: layerSummary.nodeId, scoreNode: scoreNode, classIndex: classIndex), method: method)
        let cam = result.map
        let label = m.labels.flatMap { cam.classIndex < $0.count ? $0[cam.classIndex] : nil }
        let where_ = result.resolution == .layer ? "layer \(layerSummary.name) \(cam.height)×\(cam.width)" : "input \(cam.height)×\(cam.width)"
        printErr("class \(cam.classIndex)\(label.map { " (\($0))" } ?? ""), score \(cam.score) (\(postSoftmax ? "probability" : "logit")), \(where_), \(method.rawValue)")
        if let c = result.completeness {
            printErr(String(format: "integrated gradients: Σ attributions %.4f vs score difference %.4f (completeness error %.2e)",
                            c.attributionSum, c.scoreDifference, c.error))
        }

        switch format {
        case .npy:
            try writeTensor(Tensor(shape: [cam.height, cam.width], scalars: cam.heatmap), format: .npy, to: o)
        case .json:
            let obj: [String: Any] = [
                "class": cam.classIndex, "label": label ?? NSNull(), "score": Double(cam.score),
                "layer": result.resolution == .layer ? layerSummary.name : "input", "method": method.rawValue, "height": cam.height, "width": cam.width,
                "heatmap": cam.heatmap.map { Double($0) },
            ]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) + Data("\n".utf8)
            if let o { try data.write(to: URL(fileURLWithPath: o), options: .atomic) } else { FileHandle.standardOutput.write(data) }
        case .png:
            let (w, h) = (photo?.width ?? pipeline.width, photo?.height ?? pipeline.height)
            let percentile = displayPercentile ?? (result.resolution == .input ? 99 : nil)
            if let p = percentile, !(0 < p && p <= 100) { throw CLIError("--display-percentile must be in (0, 100], got \(p)") }
            switch show {
            case .heatmap: try writePNG(try camHeatmapImage(cam, width: w, height: h, colormap: colormap, displayPercentile: percentile), to: o)
            case .overlay:
                guard let photo else { throw CLIError("an overlay needs an image input; with .npy use --show heatmap") }
                try writePNG(try camOverlay(cam, on: photo, alpha: alpha, colormap: colormap, displayPercentile: percentile), to: o)
            }
        }
    }
}

enum HeatmapView: String, ExpressibleByArgument, CaseIterable {
    case overlay, heatmap
}

extension CAMMethod: ExpressibleByArgument {}
