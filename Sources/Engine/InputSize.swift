/// Running a network saved with a fixed input size at another size.
///
/// Convolutions, pooling, padding, cropping, normalisations, activations and the joins of
/// branches work on a feature map of any height and width; the saved size only matters
/// from the first layer that turns a map into a vector of a fixed length (Flatten, a
/// Reshape of a map, the Dense after them). Global pooling gives the same length at every
/// size, so a model headed by it runs at any size end to end.
extension Network {
    /// The same layers (shared, not copied) with the input's height and width left open
    /// (`[-1, -1, c]`), node ids and names unchanged. Nodes whose shape cannot be stated
    /// for an open size (a Dense after a Flatten) keep their saved shape: they are never
    /// run at another size, because `sizeDependence(of:height:width:)` refuses every node
    /// behind them first. Its forward passes use its own plan cache, so the saved
    /// network's plans are never reused for another size.
    public func withOpenInputSize() throws -> Network {
        guard inputShape.count == 3 else {
            throw EngineError.invalidRequest("only an image input (H, W, C) can take another size; the input is \(inputShape)")
        }
        var shapes: [[Int]] = [[-1, -1, inputShape[2]]]
        var open: [Node] = [Node(id: 0, layer: nil, inputs: [], outputShape: shapes[0])]
        for node in nodes.dropFirst() {
            let shape = (try? node.layer!.outputShape(for: node.inputs.map { shapes[$0] })) ?? node.outputShape
            shapes.append(shape)
            open.append(Node(id: node.id, layer: node.layer, inputs: node.inputs, outputShape: shape))
        }
        return try Network(nodes: open, outputNode: outputNode, layerIndex: layerIndex, preActivationIndex: preActivationIndex)
    }

    /// Why node `node` cannot be computed for an input of `height × width` (channels as
    /// saved), or nil when it can: the first node on its path, in topological order, whose
    /// output at that size is empty, cannot be formed, or differs from the saved shape in an
    /// axis that is not a feature map's height or width (a Flatten's length). Every node
    /// before it on the path runs at that size. Shapes only: no tensor is computed.
    public func sizeDependence(of node: Int, height: Int, width: Int) -> SizeDependence? {
        guard node >= 0, node < nodes.count, inputShape.count == 3 else { return nil }
        var shapes: [Int: [Int]] = [0: [height, width, inputShape[2]]]
        for id in ancestors(of: node).sorted().dropFirst() {
            let n = nodes[id]
            let shape: [Int]
            do {
                shape = try n.layer!.outputShape(for: n.inputs.map { shapes[$0]! })
            } catch {
                return SizeDependence(node: id, shape: nil, savedShape: n.outputShape, reason: "\(error)")
            }
            if shape.contains(where: { $0 <= 0 }) {
                return SizeDependence(node: id, shape: shape, savedShape: n.outputShape, reason: "its output would be empty")
            }
            let spatial = shape.count == 3 && n.outputShape.count == 3
            let fixedAxes = spatial ? Array(shape[2...]) : shape
            let savedFixedAxes = spatial ? Array(n.outputShape[2...]) : n.outputShape
            if fixedAxes != savedFixedAxes {
                return SizeDependence(
                    node: id, shape: shape, savedShape: n.outputShape,
                    reason: "its output would have shape \(shape) where the saved model has \(n.outputShape)")
            }
            shapes[id] = shape
        }
        return nil
    }

    /// The square sizes in `range` at which `node` can be computed, as runs of consecutive
    /// sizes (a stride-2 pool maps 224 and 225 to the same 112, so a Flatten's length is
    /// the same over a run of sizes).
    public func squareSizes(computing node: Int, in range: ClosedRange<Int>) -> [ClosedRange<Int>] {
        var runs: [ClosedRange<Int>] = []
        for s in range where sizeDependence(of: node, height: s, width: s) == nil {
            if let last = runs.last, last.upperBound == s - 1 {
                runs[runs.count - 1] = last.lowerBound...s
            } else {
                runs.append(s...s)
            }
        }
        return runs
    }
}

/// The node that stops a network from running at a size: see `Network.sizeDependence`.
public struct SizeDependence: Sendable, Equatable {
    /// The first node on the path whose output depends on the input size.
    public var node: Int
    /// Its per-sample output shape at the asked size (nil: it cannot be formed).
    public var shape: [Int]?
    public var savedShape: [Int]
    /// Why, in words.
    public var reason: String
}
