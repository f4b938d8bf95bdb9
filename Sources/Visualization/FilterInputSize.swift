import Engine

/// The size a filter visualisation is drawn at, and the network that draws it.
///
/// A model that takes any size draws at the asked size (default 150, the book's). A
/// model saved with a fixed input draws at its own size unless another is asked for;
/// then its layers run with the input size left open (`Network.withOpenInputSize`), which
/// works for every layer before the first one that depends on the saved size (a Flatten
/// and what follows it). A layer behind that one is refused by name, never drawn at the
/// saved size instead of the asked one.
extension ModelSession {
    /// Whether the model was saved with a fixed input height and width.
    var hasFixedInputSize: Bool {
        let s = network.inputShape
        return s.count == 3 && s[0] != -1 && s[1] != -1
    }

    /// (height, width) of a canonical request's images: a model's fixed input when the
    /// size is its height (a non-square input keeps its width), else size × size; for a
    /// model that takes any size, size on each open axis.
    func filterImageSize(_ r: FilterRequest) -> (height: Int, width: Int) {
        let input = network.inputShape
        let size = r.size ?? 150
        if hasFixedInputSize { return size == input[0] ? (input[0], input[1]) : (size, size) }
        return (input[0] == -1 ? size : input[0], input[1] == -1 ? size : input[1])
    }

    /// Throws `sizeDependentLayer` when `node` (the layer `layer`) cannot be computed at
    /// `height × width`, naming the first layer on its path that depends on the size and
    /// the sizes at which `layer` can be drawn (`needsFeatureMap`: and that the method asked
    /// for needs a feature map, which the layer's output is not at any size).
    func checkInputSize(height: Int, width: Int, node: Int, layer: String, needsFeatureMap: Bool = false) throws {
        guard hasFixedInputSize, let d = network.sizeDependence(of: node, height: height, width: width) else { return }
        let input = network.inputShape
        let blocker = network.nodes[d.node]
        let name = keras.layers.first { $0.nodeId == d.node }?.path ?? blocker.name
        let kind = blocker.layer?.kind ?? "layer"
        let runs = network.squareSizes(computing: node, in: FilterRequest.sizeRange)
        let sizes =
            runs.isEmpty
            ? "no square size in \(FilterRequest.sizeRange.lowerBound)...\(FilterRequest.sizeRange.upperBound)"
            : "size=" + runs.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)...\($0.upperBound)" }.joined(separator: ", ")
        let saved = "\(input[0])×\(input[1])"
        throw RequestError.sizeDependentLayer(
            layer: layer,
            detail: "layer '\(layer)' cannot be drawn at \(height)×\(width): '\(name)' (\(kind)) on its path depends on the "
                + "input size the model was saved with (\(saved)): \(d.reason). '\(layer)' works at \(sizes); "
                + "the layers before '\(name)' work at other sizes too"
                + (needsFeatureMap ? "; the book's method also needs a feature map (H, W, C): ask for its units with method=lucid" : ""))
    }

    /// The network that runs at `height × width`: the model's own at its saved size (or
    /// when it takes any size), else its layers with the input size open, made once.
    func filterNetwork(height: Int, width: Int) throws -> Network {
        let input = network.inputShape
        guard hasFixedInputSize, (height, width) != (input[0], input[1]) else { return network }
        return try openSizeNetwork.withLock { cached in
            if let cached { return cached }
            let open = try network.withOpenInputSize()
            cached = open
            return open
        }
    }
}
