/// The chains a backward pass crosses without their inner outputs: the one table that
/// `forward` reads to leave those outputs out of a trace, and `backward` reads to go through
/// each chain from its last output. (The inference plan runs each chain as one step; that
/// speeds it up but is not needed for correctness: an inner output the trace does not keep
/// is never read.)
///
/// Each chain ends in a ReLU whose derivative its own output gives (ReLU, ReLU6, leaky with
/// slope 0…) and that alone reads the node before it:
/// - affine map (BatchNormalization at inference, a per-channel affine) → ReLU: the input's
///   gradient is relu′(y) · g · scale, from the ReLU's output y alone;
/// - convolution → ReLU: the ReLU's backward from y, then the convolution's, which reads
///   only its input;
/// - convolution → affine map → ReLU, whose affine map is crossed as above: the
///   convolution's backward reads only its input, and the gradient stands in for its output.
enum Crossing {
    /// The node is the affine map of an affine → ReLU chain.
    case affineBeforeReLU(ChannelAffine, ReLUSpec)
    /// The node is the convolution of a convolution → ReLU chain.
    case convolutionBeforeReLU(ReLUSpec)
    /// The node is the convolution of a convolution → affine → ReLU chain.
    case convolutionBeforeCrossedAffine
}

extension Network {
    /// Every node before `last` that a backward pass from `last` crosses, and how (the
    /// readers counted are those up to `last`).
    func crossings(upTo last: Int) -> [Int: Crossing] {
        guard last > 1 else { return [:] }
        var readers = [[Int]](repeating: [], count: last + 1)
        for node in nodes[1...last] { for i in node.inputs { readers[i].append(node.id) } }
        var table: [Int: Crossing] = [:]
        for id in 1..<last {
            if let (affine, relu) = affineReLUPair(id, readers: readers[id]) {
                table[id] = .affineBeforeReLU(affine, relu)
            } else if let relu = convolutionReLUPair(id, readers: readers[id]) {
                table[id] = .convolutionBeforeReLU(relu)
            } else if isConvolution(id), readers[id].count == 1, nodes[readers[id][0]].inputs == [id],
                affineReLUPair(readers[id][0], readers: readers[readers[id][0]]) != nil
            {
                table[id] = .convolutionBeforeCrossedAffine
            }
        }
        return table
    }

    /// The gradient below a crossed chain whose last node (the ReLU) has output `y` and
    /// gradient `g`, and whose inner node is `crossing`; `below` is the chain's input, read
    /// by a convolution's backward. nil for `convolutionBeforeCrossedAffine`, which is not
    /// the node a ReLU reads.
    func backward(crossing: Crossing, inner: Int, output y: Tensor, gradient g: Tensor, below: Tensor?, guided: Bool) throws -> Tensor? {
        switch crossing {
        case .affineBeforeReLU(let affine, let relu):
            return Tensor(
                shape: y.shape,
                scalars: relu.backwardThroughAffine(output: y.scalars, gradient: g.scalars, scale: affine.scale, guided: guided))
        case .convolutionBeforeReLU(let relu):
            guard let x = below else { return nil }
            let ones = [Float](repeating: 1, count: y.shape.last ?? 1)
            let d = Tensor(
                shape: y.shape, scalars: relu.backwardThroughAffine(output: y.scalars, gradient: g.scalars, scale: ones, guided: guided))
            return try nodes[inner].layer!.backward([x], output: d, outputGradient: d)[0]
        case .convolutionBeforeCrossedAffine:
            return nil
        }
    }

    private func isConvolution(_ id: Int) -> Bool {
        nodes[id].inputs.count == 1 && (nodes[id].layer is Conv2D || nodes[id].layer is DepthwiseConv2D)
    }

    private func convolutionReLUPair(_ id: Int, readers: [Int]) -> ReLUSpec? {
        guard isConvolution(id), readers.count == 1, nodes[readers[0]].inputs == [id],
            let relu = (nodes[readers[0]].layer as? Activation)?.relu, relu.isDifferentiableFromOutput
        else { return nil }
        return relu
    }

    private func affineReLUPair(_ id: Int, readers: [Int]) -> (ChannelAffine, ReLUSpec)? {
        guard nodes[id].inputs.count == 1,
            let affine = (nodes[id].layer as? BatchNormalization)?.affine ?? (nodes[id].layer as? ChannelAffine),
            readers.count == 1, nodes[readers[0]].inputs == [id], let relu = (nodes[readers[0]].layer as? Activation)?.relu,
            relu.isDifferentiableFromOutput
        else { return nil }
        return (affine, relu)
    }
}
