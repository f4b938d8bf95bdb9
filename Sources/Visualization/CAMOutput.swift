import Engine
import Imaging

/// Pictures of a class-activation map.

/// The map coloured (jet by default, the book's) at `width` × `height`: upsampled
/// bilinearly with half-pixel centres (a map already at that size is unchanged),
/// then quantised the book's way, `uint8(255 · v)`, and looked up in the colormap.
///
/// `displayPercentile` (e.g. 99) rescales for display only: values are divided by
/// that percentile of the map (nearest rank) and clipped to 1 — gradient saliency is
/// so peaked that max-normalised it is nearly black (PAIR saliency's
/// `VisualizeImageGrayscale` uses 99). nil (default) draws the map as it is.
public func camHeatmapImage(
    _ map: ClassActivationMap, width: Int, height: Int,
    colormap: Colormap = .jet, displayPercentile: Float? = nil
) throws -> Image {
    guard map.heatmap.count == map.width * map.height, map.width > 0, map.height > 0 else {
        throw VisualizationError.invalid("heatmap of \(map.heatmap.count) values is not \(map.width)x\(map.height)")
    }
    var values =
        (map.width == width && map.height == height)
        ? map.heatmap
        : try upsampleBilinear(map.heatmap, width: map.width, height: map.height, toWidth: width, toHeight: height)
    if let q = displayPercentile {
        guard q > 0, q <= 100 else { throw VisualizationError.invalid("display percentile must be in (0, 100], got \(q)") }
        let top = percentile(values, q)
        if top > 0 { values = values.map { min($0 / top, 1) } }
    }
    return try colormap.apply(normalized: values, width: width, height: height)
}

/// The book's overlay on `image` (8-bit RGB, or grey, drawn as RGB):
/// `heatmap_rgb × alpha + image`, clipped to [0, 255] (rounded), alpha 0.4 by default.
public func camOverlay(
    _ map: ClassActivationMap, on image: Image, alpha: Float = 0.4,
    colormap: Colormap = .jet, displayPercentile: Float? = nil
) throws -> Image {
    let rgb: Image
    switch image.channels {
    case 3: rgb = image
    case 1:
        var px = [UInt8](repeating: 0, count: image.width * image.height * 3)
        for i in 0..<(image.width * image.height) { for k in 0..<3 { px[3 * i + k] = image.pixels[i] } }
        rgb = try Image(width: image.width, height: image.height, channels: 3, pixels: px)
    default:
        throw VisualizationError.invalid("the overlay needs an RGB or grey image, got \(image.channels) channels")
    }
    let heat = try camHeatmapImage(
        map, width: rgb.width, height: rgb.height, colormap: colormap,
        displayPercentile: displayPercentile)
    return try overlayAdditive(heatmap: heat, onto: rgb, alpha: alpha)
}

/// The q-th percentile by nearest rank: the smallest value with at least q % of the
/// values at or below it.
func percentile(_ values: [Float], _ q: Float) -> Float {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = Int((Double(q) / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

extension CAMMethod {
    /// Whether the method weights a layer's feature map (the CAM family) rather than
    /// attributing to the input pixels (the saliency family).
    public var weightsALayer: Bool {
        switch self {
        case .gradcam, .gradcamPlusPlus, .xgradcam, .scorecam, .ablationcam, .layercam, .hirescam, .gradcamElementwise,
            .eigencam, .guidedGradcam:
            return true
        case .saliency, .smoothgrad, .integratedGradients, .guidedBackprop: return false
        }
    }

    /// Model passes (forward, or forward + backward) one heatmap costs, roughly — Grad-CAM
    /// is 1; Score-CAM runs one forward pass per channel of the layer, Ablation-CAM one
    /// per channel from the layer on (counted as whole passes, an upper bound: what lies
    /// below the layer is not run again).
    /// `aug_smooth` runs the method once per augmentation (six). Several `targets` share the
    /// forward passes; each adds a backward pass per pass of the methods that have one, counted
    /// as a whole pass (Score-CAM, Ablation-CAM and Eigen-CAM add none).
    public func passes(options: CAMOptions = CAMOptions(), layerChannels: Int, targets: Int = 1) -> Int {
        let runs = options.augSmooth && resolution == .layer ? Network.smoothingAugmentations.count : 1
        let perTarget: Bool
        switch self {
        case .scorecam, .ablationcam, .eigencam: perTarget = false
        default: perTarget = true
        }
        return runs * passesOfOneRun(options: options, layerChannels: layerChannels) * (perTarget ? max(targets, 1) : 1)
    }

    private func passesOfOneRun(options: CAMOptions, layerChannels: Int) -> Int {
        switch self {
        case .gradcam, .gradcamPlusPlus, .xgradcam, .layercam, .hirescam, .gradcamElementwise, .eigencam, .saliency,
            .guidedBackprop:
            return 1
        case .guidedGradcam: return 2
        case .scorecam, .ablationcam: return layerChannels + 1
        case .smoothgrad: return options.smoothGradSamples
        case .integratedGradients: return options.integratedGradientsSteps + 1
        }
    }
}
