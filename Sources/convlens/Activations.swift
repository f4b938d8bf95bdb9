import ArgumentParser
import Engine
import Foundation
import Imaging
import KerasFormat
import Visualization

struct Activations: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what one layer sees in an image: every channel as a grid (PNG), one channel, or the raw numbers.",
        discussion: """
            Each channel is normalised on its own as in Deep Learning with Python §5.4
            (minus its mean, over its std, × 64 + 128, clipped), then coloured.
            Blank channels — the filter's pattern is absent from this image — show as flat colour;
            --stats lists each channel's mean, max and fraction of zeros.
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "Input: a PNG/JPEG image, or a preprocessed .npy float32 array of shape (H,W,C) or (N,H,W,C).")
    var input: String

    @Option(name: .long, help: "Layer name (see `convlens summary`).")
    var layer: String?

    @Flag(name: .long, help: "One picture of the first --overview-channels channels of every spatial layer, a row per layer.")
    var overview = false

    @Option(name: .customLong("overview-channels"), help: "Channels per layer in the overview.")
    var overviewChannels = 8

    @Option(
        name: .long, help: "png: the grid (or one channel); npy: the layer's raw float output; json: its shape and per-channel statistics.")
    var format: OutputFormat = .png

    @OptionGroup var numericsOptions: NumericsOptions

    @Option(name: .long, help: "Channels per row of the grid.")
    var cols = 16

    @Option(name: .long, help: "Colormap: viridis, magma, inferno, jet, turbo, grey.")
    var colormap: Colormap = .viridis

    @Option(name: .long, help: "Draw only this channel, at full size.")
    var channel: Int?

    @Flag(name: .long, help: "Print per-channel statistics (mean, max, fraction of zeros) to stdout.")
    var stats = false

    @Option(name: .short, help: "Output file (required for png and npy; json goes to stdout without it).")
    var o: String?

    func run() throws {
        let m = try model.load(inputOptions)
        let input = try renderInput(self.input)
        if overview {
            guard layer == nil, format == .png else {
                throw CLIError("--overview draws every spatial layer as a PNG; drop --layer/--format")
            }
            var request = OverviewRequest()
            request.channels = overviewChannels
            request.colormap = colormap
            try write(try m.session.render(request, input: input), to: o)
            return
        }
        guard let layer else { throw CLIError("give --layer (see `convlens summary`) or --overview") }
        var request = ActivationsRequest(layer: layer)
        request.cols = cols
        request.colormap = colormap
        request.channel = channel
        request.numerics = numericsOptions.numerics
        if stats {
            request.format = .json
            let document = try JSONDecoder().decode(ActivationsDocument.self, from: try m.session.render(request, input: input).body)
            for s in document.channels {
                print(
                    String(
                        format: "channel %4d  mean %10.4f  max %10.4f  zeros %5.1f%%%@", s.channel, s.mean, s.max,
                        100 * s.zeroFraction, s.max == 0 ? "  (blank)" : ""))
            }
            if format == .json, o == nil { return }
        }
        request.format = format
        try write(try m.session.render(request, input: input), to: o)
    }
}

extension OutputFormat: ExpressibleByArgument {}

extension Colormap: ExpressibleByArgument {}
