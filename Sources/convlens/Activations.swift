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

    @Option(name: .long, help: "png: the grid (or one channel); npy/json: the layer's raw float output.")
    var format: PictureFormat = .png

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
        let m = try model.load()
        if overview {
            guard layer == nil, format == .png else { throw CLIError("--overview draws every spatial layer as a PNG; drop --layer/--format") }
            let x = try readInput(input, for: m, options: inputOptions).sample(0)
            // Layers that compute something new: not padding, normalisation or dropout copies.
            let skipped: Set<String> = ["InputLayer", "ZeroPadding2D", "BatchNormalization", "Dropout", "SpatialDropout2D",
                                        "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization"]
            let spatial = m.keras.layers.filter { $0.isSpatial && $0.nodeId > 0 && !skipped.contains($0.className) }
            let trace = try m.network.forward(x, stopAfter: spatial.map(\.nodeId).max() ?? 0, keep: Set(spatial.map(\.nodeId)))
            let picture = try activationOverview(spatial.compactMap { l in trace[l.nodeId].map { (l.name, $0) } },
                                                 channels: overviewChannels, colormap: colormap)
            try writePNG(picture, to: o)
            return
        }
        guard let layer else { throw CLIError("give --layer (see `convlens summary`) or --overview") }
        let node = try resolveLayer(layer, in: m)
        let x = try readInput(input, for: m, options: inputOptions)
        // Stop right after the layer: nothing above it is computed.
        let activation = try m.network.forward(x, stopAfter: node)[node]!
        if stats {
            guard activation.rank == 4 else { throw CLIError("layer '\(layer)' has no spatial feature map (output \(activation.sampleShape))") }
            for s in try channelStatistics(activation.sample(0)) {
                print(String(format: "channel %4d  mean %10.4f  max %10.4f  zeros %5.1f%%%@", s.channel, s.mean, s.max,
                             100 * s.zeroFraction, s.max == 0 ? "  (blank)" : ""))
            }
        }
        switch format {
        case .npy: try writeTensor(activation, format: .npy, to: o)
        case .json: try writeTensor(activation, format: .json, to: o)
        case .png:
            guard activation.rank == 4 else {
                throw CLIError("layer '\(layer)' has output shape \(activation.sampleShape), not a spatial feature map; use --format npy or json")
            }
            let one = activation.sample(0)
            let picture = try channel.map { try activationChannel(one, channel: $0, colormap: colormap) }
                ?? activationGrid(one, cols: cols, colormap: colormap)
            try writePNG(picture, to: o)
        }
    }
}

enum PictureFormat: String, ExpressibleByArgument, CaseIterable {
    case png, npy, json
}

extension Colormap: ExpressibleByArgument {}

func writePNG(_ image: Image, to path: String?) throws {
    guard let path else { throw CLIError("PNG output needs -o FILE") }
    try encodePNG(image).write(to: URL(fileURLWithPath: path), options: .atomic)
}
