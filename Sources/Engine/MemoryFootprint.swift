/// What a gradient-ascent step holds in memory, read from the layer graph and shapes
/// alone (no tensor is made), so a front end can refuse a request before it runs.
public struct AscentFootprint: Sendable, Equatable {
    /// Float32 elements per sample of the outputs a forward pass keeps for the backward
    /// pass to the input (`forward(_:stopAfter:backwardTo: 0)`).
    public var keptElements: Int
    /// Float32 elements per sample of the largest output on the path: the backward pass
    /// holds a few such gradients at once besides what is kept.
    public var largestElements: Int
    /// Float32 elements per sample of the maximised node's output (the seed gradient).
    public var targetElements: Int

    /// Gradients the backward pass holds at once, in units of the largest output: the
    /// gradient arriving at a node, the one it passes down, and a residual branch's
    /// gradient waiting to be summed.
    public static let gradientsInFlight = 3

    /// Bytes per sample at the peak of a step: the kept outputs, the gradients in flight
    /// and the seed.
    public var bytesPerSample: Int {
        MemoryLayout<Float>.size * (keptElements + Self.gradientsInFlight * largestElements + targetElements)
    }
}

extension Network {
    /// The footprint of one ascent step maximising node `layerNode` for an input of
    /// `height × width` (channels as the model has them). Throws when a node on the path
    /// cannot be formed at that size.
    public func ascentFootprint(layerNode: Int, height: Int, width: Int) throws -> AscentFootprint {
        guard layerNode > 0, layerNode < nodes.count, inputShape.count == 3 else {
            throw EngineError.invalidRequest("node \(layerNode) has no ascent footprint")
        }
        let path = ancestors(of: layerNode).sorted()
        var shapes: [Int: [Int]] = [0: [height, width, inputShape[2]]]
        for id in path.dropFirst() {
            let node = nodes[id]
            shapes[id] = try node.layer!.outputShape(for: node.inputs.map { shapes[$0]! })
        }
        func elements(_ id: Int) -> Int { shapes[id]!.reduce(1) { $0 * max($1, 0) } }
        let kept = nodesKept(last: layerNode, keep: [], backwardTo: 0).intersection(path)
        return AscentFootprint(
            keptElements: kept.reduce(0) { $0 + elements($1) },
            largestElements: path.map(elements).max() ?? 0,
            targetElements: elements(layerNode))
    }
}
