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
            The class score is the logit before a softmax or sigmoid head (the Grad-CAM paper);
            --post-activation (alias --post-softmax) uses the probability, as the book does. Default layer: the last convolution's output
            that is still spatial, after its own BatchNorm/activation.

            Examples:
              convlens heatmap --input cat.jpg -o overlay.png
              convlens heatmap --input cat.jpg --class 281 --method gradcam++ --show heatmap -o h.png
              convlens heatmap --input cat.jpg --format json        # the map at the layer's resolution
              convlens heatmap --input cat.jpg --classes 281,285 -o grid.png   # one tile per class
              convlens heatmap --model unet.keras --input pet.jpg --class 1 --region 40,30,120,100 -o r.png
              convlens heatmap --model regressor.keras --input x.png --target decrease -o down.png

            A segmentation model (a per-pixel output) scores class c as the sum of its logits
            over the cells whose argmax is c, or over the cells --region covers (x0,y0,x1,y1 in
            the input image's pixels, x1 and y1 excluded). --target decrease explains what lowers
            the score: a regression output's negative; class 0 of a one-unit sigmoid head.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "Input image (PNG/JPEG), or a preprocessed .npy (then --show heatmap).")
    var input: String

    @Option(name: .long, help: "Method: \(CAMMethod.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: CAMMethod = .gradcam

    @Option(name: .customLong("class"), help: "Class index or label (default: the top prediction).")
    var classChoice: String?

    @Option(name: .long, help: "Several classes, comma-separated (at most 16): one map each, from shared passes (a PNG grid).")
    var classes: String?

    @Option(name: .long, help: "increase (default) or decrease: explain what lowers the score.")
    var target: TargetDirection?

    @Option(name: .long, help: "Segmentation: score the class over the cells this box covers, x0,y0,x1,y1 in image pixels.")
    var region: String?

    @Option(name: .long, help: "Layer whose feature map is weighted (default: the last spatial conv output).")
    var layer: String?

    @Flag(
        name: [.customLong("post-activation"), .customLong("post-softmax")],
        help: "Use the probability (after the softmax or sigmoid head) as the class score (the book).")
    var postActivation = false

    @Flag(
        name: .customLong("eigen-smooth"),
        help: "CAMs: the first principal component of the weighted activations instead of their sum (pytorch-grad-cam's eigen_smooth).")
    var eigenSmooth = false

    @Flag(
        name: .customLong("aug-smooth"),
        help: "CAMs: average the maps of the input mirrored or not × brightness 0.9/1/1.1 (six runs; pytorch-grad-cam's aug_smooth).")
    var augSmooth = false

    @Option(name: .long, help: "Heatmap weight in the overlay, 0...1 (the book: 0.4).")
    var alpha: Float = 0.4

    @Option(name: .long, help: "Colormap: jet (the book), turbo, viridis, magma, inferno, grey.")
    var colormap: Colormap = .jet

    @Option(
        name: .customLong("display-percentile"),
        help: ArgumentHelp(
            "Draw the map scaled to this percentile instead of its maximum (default: 99 for the saliency family, whose maps are peaked; none for CAMs).",
            valueName: "p"))
    var displayPercentile: Float?

    @Option(name: .long, help: "png: a picture; npy/json: the map at the layer's own resolution, in [0, 1].")
    var format: OutputFormat = .png

    @Option(name: .long, help: "What the PNG shows: overlay (heatmap on the image) or heatmap (coloured map alone, image size).")
    var show: HeatmapView = .overlay

    @OptionGroup var numericsOptions: NumericsOptions

    @Option(name: .short, help: "Output file (required for png and npy; json goes to stdout without it).")
    var o: String?

    func run() throws {
        let m = try model.load(inputOptions)
        var request = HeatmapRequest()
        request.numerics = numericsOptions.numerics
        request.method = method
        request.classChoice = classChoice
        request.classes = classes.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        request.target = target
        request.region = try region.map { try PixelRegion(parsing: $0) }
        request.layer = layer
        request.postActivation = postActivation
        request.eigenSmooth = eigenSmooth
        request.augSmooth = augSmooth
        request.alpha = alpha
        request.colormap = colormap
        request.show = show
        request.displayPercentile = displayPercentile
        request.format = format
        let rendered = try m.session.render(request, input: try renderInput(input))
        let label = rendered[fact: "Label"].map { " (\($0))" } ?? ""
        let target = [rendered[fact: "Target"], rendered[fact: "Region"].map { "region \($0)" }].compactMap { $0 }
            .map { ", \($0)" }.joined()
        if let several = rendered[fact: "Classes"] {
            printErr(
                "classes \(several), scores \(rendered[fact: "Scores"] ?? "?")\(target), layer \(rendered[fact: "Layer"] ?? "?"), \(method.rawValue)"
            )
        } else {
            printErr(
                "class \(rendered[fact: "Class"] ?? "?")\(label), score \(rendered[fact: "Score"] ?? "?") (\(rendered[fact: "Score-Kind"] ?? ""))\(target), layer \(rendered[fact: "Layer"] ?? "?"), \(method.rawValue)"
            )
        }
        if let sum = rendered[fact: "Attribution-Sum"].flatMap(Float.init),
            let difference = rendered[fact: "Score-Difference"].flatMap(Float.init)
        {
            printErr(
                String(
                    format: "integrated gradients: Σ attributions %.4f vs score difference %.4f (completeness error %.2e)",
                    sum, difference, abs(sum - difference)))
        }
        try write(rendered, to: o)
    }
}

extension HeatmapView: ExpressibleByArgument {}

extension TargetDirection: ExpressibleByArgument {}

extension CAMMethod: ExpressibleByArgument {}
