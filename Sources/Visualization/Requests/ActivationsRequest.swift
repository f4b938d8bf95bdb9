import Engine
import Foundation
import Imaging
import KerasFormat

/// `POST /activations` and `convlens activations`: what one layer sees in an image.
public struct ActivationsRequest: RenderRequest {
    public static let kind = "activations"

    /// nil: the first layer with a spatial feature map. Canonical: the layer's name.
    public var layer: String?
    /// Channels per row of the grid (the book: 16).
    public var cols = 16
    public var colormap: Colormap = .viridis
    /// Draw only this channel, at full size; nil: the grid of every channel.
    public var channel: Int?
    /// png: the grid (or the channel); json: per-channel statistics; npy: the raw output.
    public var format: OutputFormat = .png
    /// `fast`: the forward pass may run Winograd convolutions (`Numerics`; the same
    /// activations to float rounding). Canonical nil for exact.
    public var numerics: Numerics?

    public static let colsRange = 1...256

    public init(layer: String? = nil) { self.layer = layer }

    public func canonical(for session: ModelSession) throws -> ActivationsRequest {
        var r = self
        try RequestError.check("cols", cols, in: Self.colsRange)
        let summary: LayerSummary
        if let layer {
            // The raw numbers of any layer can be had; pictures and statistics need a feature map.
            summary = format == .npy ? try session.layer(named: layer) : try session.spatialLayer(named: layer)
        } else {
            guard let first = session.keras.layers.first(where: { $0.isSpatial && $0.nodeId > 0 }) else {
                throw RequestError.unsupported("the model has no layer with a spatial feature map")
            }
            summary = first
        }
        r.layer = summary.path
        r.numerics = Numerics.canonical(numerics)
        if let channel {
            let channels = summary.outputShape.last ?? 0
            guard channel >= 0, channel < channels else {
                throw RequestError.outOfRange(
                    "channel \(channel) out of range: '\(summary.name)' has \(channels) channels (0...\(channels - 1))")
            }
        }
        return r
    }
}

extension ModelSession {
    /// One layer's activations: forward to the layer and no further.
    fileprivate func renderActivations(_ request: ActivationsRequest, input: RenderInput, limits: RenderLimits) throws -> Rendered {
        let r = try request.canonical(for: self)
        let layer = try self.layer(named: r.layer ?? "")
        let (x, _) = try prepare(input, limits: limits)
        guard let activation = try Numerics.scoped(r.numerics, { try network.forward(x, stopAfter: layer.nodeId)[layer.nodeId] }) else {
            throw VisualizationError.invalid("the forward pass did not produce '\(layer.name)'")
        }
        let shape = Array(activation.shape.dropFirst())
        let facts =
            [Fact("Layer", layer.name), Fact("Shape", shape.map(String.init).joined(separator: "x"))]
            + Fact.numerics(r.numerics)
        if r.format == .npy { return Rendered(body: activation.npyData(), format: .npy, facts: facts) }
        guard activation.rank == 4 else { throw RequestError.notSpatial(layer: layer.name, shape: shape) }
        let one = activation.sample(0)
        if r.format == .json {
            let body = ActivationsDocument(layer: layer.name, shape: shape, channels: try channelStatistics(one))
            return Rendered(body: try jsonDocument(body), format: .json, facts: facts)
        }
        let picture =
            try r.channel.map { try activationChannel(one, channel: $0, colormap: r.colormap) }
            ?? activationGrid(one, cols: r.cols, colormap: r.colormap)
        return Rendered(body: try encodePNG(picture, fast: true), format: .png, facts: facts)
    }
}

/// The JSON answer of an activations request: the layer's shape and each channel's statistics.
public struct ActivationsDocument: Codable, Sendable {
    public var layer: String
    public var shape: [Int]
    public var channels: [ChannelStatistics]
}

/// `convlens activations --overview`: the first channels of every spatial layer that
/// computes something new, a row per layer, for one image.
public struct OverviewRequest: RenderRequest {
    public static let kind = "overview"

    public var channels = 8
    public var colormap: Colormap = .viridis

    public static let channelsRange = 1...64

    public init() {}

    public func canonical(for session: ModelSession) throws -> OverviewRequest {
        try RequestError.check("channels", channels, in: Self.channelsRange)
        return self
    }
}

extension ModelSession {
    /// Layers that compute something new: not padding, normalisation or dropout copies.
    public var overviewLayers: [LayerSummary] {
        let skipped: Set<String> = [
            "InputLayer", "ZeroPadding2D", "BatchNormalization", "Dropout", "SpatialDropout2D",
            "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
        ]
        return keras.layers.filter { $0.isSpatial && $0.nodeId > 0 && !skipped.contains($0.className) }
    }

    fileprivate func renderOverview(_ request: OverviewRequest, input: RenderInput, limits: RenderLimits) throws -> Rendered {
        let r = try request.canonical(for: self)
        let layers = overviewLayers
        let (x, _) = try prepare(input, limits: limits)
        let trace = try network.forward(x.sample(0), stopAfter: layers.map(\.nodeId).max() ?? 0, keep: Set(layers.map(\.nodeId)))
        let picture = try activationOverview(
            layers.compactMap { l in trace[l.nodeId].map { (l.name, $0) } },
            channels: r.channels, colormap: r.colormap)
        return Rendered(body: try encodePNG(picture), format: .png, facts: [Fact("Layers", String(layers.count))])
    }
}

extension ActivationsRequest {
    public func render(
        on session: ModelSession, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        try session.renderActivations(self, input: try required(input), limits: limits)
    }
}

extension OverviewRequest {
    public func render(
        on session: ModelSession, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        try session.renderOverview(self, input: try required(input), limits: limits)
    }
}
