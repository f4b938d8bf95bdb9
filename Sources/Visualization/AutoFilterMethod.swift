import KerasFormat

/// `method=auto`: the book's ascent where it leaves structure, lucid where it does not.
///
/// Decided by a measurement (`tools/filters/measure_structure.py`, `docs/filter-structure.md`)
/// on the bundled EfficientNet-Lite0: the share of a picture's spectral power below 1/16
/// cycle per pixel (shapes of 16 px and more, and colour), median of 4 filters per layer.
/// The book's pictures hold 0.70 of it in the first convolution and 0.09–0.16 in the next
/// two (colour fields and tints), then 0.010–0.054 from depth 0.06 on: grey texture at the
/// pixel scale, where lucid's hold 16–34× as much. The rule is that crossing
/// as a fraction of the model's convolutions — read from the layer graph, so resolving
/// `auto` costs nothing at request time.
extension FilterMethod {
    /// Layers up to this convolution depth (0: the first convolution, 1: the last) get the
    /// book: between the last depth measured where the book keeps structure (0.042) and the
    /// first where it does not (0.062).
    public static let autoBookDepth = 0.05
}

extension ModelSession {
    /// How deep a layer sits among the model's convolutions: 0 for the first convolution (and
    /// what it feeds before the next), 1 for the last; the position of the last convolution
    /// at or before the layer's node over their number − 1.
    public func convolutionDepth(of layer: LayerSummary) -> Double {
        let before = galleryLayers.filter { $0.convolution.nodeId <= layer.nodeId }.count
        guard galleryLayers.count > 1, before > 0 else { return 0 }
        return Double(before - 1) / Double(galleryLayers.count - 1)
    }

    /// The concrete method `auto` stands for at a layer: lucid for a flat layer (the book
    /// needs a feature map), the book up to `FilterMethod.autoBookDepth`, lucid beyond.
    public func autoFilterMethod(for layer: LayerSummary) -> FilterMethod {
        guard layer.isSpatial else { return .lucid }
        return convolutionDepth(of: layer) <= FilterMethod.autoBookDepth ? .book : .lucid
    }
}
