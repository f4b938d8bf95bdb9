import Testing

@testable import Engine

/// The inference plan: [padding →] convolution → BatchNormalization →
/// activation [→ residual add → activation] chains fused into one oneDNN
/// convolution must give the unfused network's numbers (within 1e-4 relative:
/// the folded products are rounded once instead of twice), and every node a
/// caller asks for must be there, as that node.
///
///     0 input [9,9,3]
///     1 conv 3x3 same → 8     2 bn     3 relu6
///     4 depthwise 3x3 /2 same (8)      5 bn      6 swish
///     7 conv 1x1 → 8, no bias          8 bn
///     9 add(8, 6)                      — a residual: 6 has two readers
///     10 conv 1x1 → 8 (leaky relu)     11 leaky relu
///     12 conv 3x3 valid → 4            13 sigmoid
///     14 global average pool           15 dense → 3      16 softmax
@Suite struct InferencePlanTests {
    let network: Network

    init() throws {
        var rng = SplitMix64(seed: 14)
        func bn(_ name: String, _ c: Int) -> BatchNormalization {
            BatchNormalization(
                name: name, gamma: rng.tensor([c], 0.5, 1.5), beta: rng.tensor([c]),
                movingMean: rng.tensor([c], -0.2, 0.2), movingVariance: rng.tensor([c], 0.5, 1.5), epsilon: 1e-3)
        }
        let layers: [(any Layer, [Int])] = [
            (
                Conv2D(
                    name: "conv1", kernel: rng.tensor([3, 3, 3, 8], -0.5, 0.5), bias: rng.tensor([8]), strides: [1, 1],
                    padding: .same, dilation: [1, 1]), [0]
            ),
            (bn("bn1", 8), [1]),
            (Activation(name: "relu6", function: .relu(maxValue: 6)), [2]),
            (
                DepthwiseConv2D(
                    name: "dw", kernel: rng.tensor([3, 3, 8, 1]), bias: nil, strides: [2, 2], padding: .same,
                    dilation: [1, 1]), [3]
            ),
            (bn("bn2", 8), [4]),
            (Activation(name: "swish", function: .swish), [5]),
            (
                Conv2D(
                    name: "project", kernel: rng.tensor([1, 1, 8, 8], -0.5, 0.5), bias: nil, strides: [1, 1],
                    padding: .same, dilation: [1, 1]), [6]
            ),
            (bn("bn3", 8), [7]),
            (Add(name: "add"), [8, 6]),
            (
                Conv2D(
                    name: "leaky_conv", kernel: rng.tensor([1, 1, 8, 8], -0.5, 0.5), bias: rng.tensor([8]),
                    strides: [1, 1], padding: .same, dilation: [1, 1]), [9]
            ),
            (Activation(name: "leaky", function: .relu(negativeSlope: 0.2)), [10]),
            (
                Conv2D(
                    name: "head_conv", kernel: rng.tensor([3, 3, 8, 4], -0.5, 0.5), bias: rng.tensor([4]),
                    strides: [1, 1], padding: .valid, dilation: [1, 1]), [11]
            ),
            (Activation(name: "sigmoid", function: .sigmoid), [12]),
            (GlobalAveragePooling2D(name: "gap", keepDims: false), [13]),
            (Dense(name: "fc", kernel: rng.tensor([4, 3]), bias: rng.tensor([3])), [14]),
            (Activation(name: "softmax", function: .softmax), [15]),
        ]
        network = try Network(input: [9, 9, 3], layers)
    }

    func input(batch: Int = 2) -> Tensor {
        var rng = SplitMix64(seed: 7)
        return rng.tensor([batch, 9, 9, 3], -2, 2)
    }

    /// max|a − b| ≤ 1e-4 · (1 + max|b|).
    func expectClose(_ a: Tensor?, _ b: Tensor?, _ what: String) {
        guard let a, let b else {
            Issue.record("\(what): missing (\(a == nil ? "fused" : "unfused"))")
            return
        }
        #expect(a.shape == b.shape, "\(what): shape \(a.shape) vs \(b.shape)")
        guard a.shape == b.shape else { return }
        let diff = a.maxAbsDifference(b)
        #expect(diff <= 1e-4 * (1 + b.maxAbs), "\(what): max diff \(diff)")
    }

    /// The fused steps of the plan that computes `last` and materialises `materialised`,
    /// each as the node it produces.
    func fusedNodes(last: Int, materialised: Set<Int>) -> [Int] {
        network.inferencePlan(last: last, materialised: materialised.union([last])).steps.compactMap {
            if case .fused = $0.operation { return $0.node }
            return nil
        }
    }

    /// A trace for a backward pass to the input of `net` (whose output is [batch, 5]): the
    /// nodes `notKept` are not in it, every other node is the unfused one, and the input
    /// gradient of two output units, plain and guided, is the unfused trace's (within 1e-4).
    func expectCrossedToTheInput(_ net: Network, _ x: Tensor, notKept: Set<Int>) throws {
        let last = net.outputNode
        let unfused = try net.forward(x, keepAll: true)
        let trace = try net.forward(x, stopAfter: last, backwardTo: 0)
        for id in 0...last {
            if notKept.contains(id) {
                #expect(trace[id] == nil, "node \(id) is not kept")
            } else {
                expectClose(trace[id], unfused[id], "node \(id)")
            }
        }
        var seed = Tensor(zeros: [x.shape[0], 5])
        seed.scalars[1] = 1
        seed.scalars[5 + 3] = -1
        for guided in [false, true] {
            let g = try net.backward(from: last, seed: seed, to: 0, trace: trace, guidedReLU: guided)
            let reference = try net.backward(from: last, seed: seed, to: 0, trace: unfused, guidedReLU: guided)
            expectClose(g, reference, "input gradient, guided: \(guided)")
        }
    }

    @Test func fusesEveryChainNobodyLooksInto() {
        // conv1+bn1+relu6 → 3; dw+bn2+swish → 6; project+bn3+add(6) → 9;
        // leaky_conv+leaky → 11; head_conv+sigmoid → 13.
        #expect(fusedNodes(last: 16, materialised: []) == [3, 6, 9, 11, 13])
        let steps = network.inferencePlan(last: 16, materialised: [16]).steps
        #expect(steps.map(\.node) == [3, 6, 9, 11, 13, 14, 15, 16])
        // The add's other input comes last: the fused step writes over it.
        #expect(steps[2].inputs == [6, 6])
    }

    @Test func fusedOutputMatchesUnfused() throws {
        let x = input()
        let unfused = try network.forward(x, keepAll: true)
        let fused = try network.forward(x)
        #expect(fused.outputs.keys.sorted() == [16])
        expectClose(fused[16], unfused[16], "output")
        // The pre-softmax logits too, which the softmax would flatten.
        expectClose(try network.forward(x, stopAfter: 15)[15], unfused[15], "logits")
    }

    @Test func everyNodeAskedForIsThatNode() throws {
        let x = input()
        let unfused = try network.forward(x, keepAll: true)
        for id in 1...16 {
            // Stopping at a node materialises it; the chain ends there.
            let stopped = try network.forward(x, stopAfter: id)
            #expect(stopped.outputs.keys.sorted() == [id])
            expectClose(stopped[id], unfused[id], "stop at \(network.nodes[id].name)")
            // Keeping it, on the way to the output.
            let kept = try network.forward(x, keep: [id])
            #expect(kept.outputs.keys.sorted() == (id == 16 ? [16] : [id, 16]))
            expectClose(kept[id], unfused[id], "keep \(network.nodes[id].name)")
            expectClose(kept[16], unfused[16], "output while keeping \(network.nodes[id].name)")
            // The plan has a step that produces it.
            #expect(network.inferencePlan(last: 16, materialised: [id, 16]).steps.contains { $0.node == id })
        }
        // A kept convolution output is its own layer's output, bit for bit: nothing
        // is folded into it (given the same input: conv1 reads the network's input).
        #expect(try network.forward(x, keep: [1])[1]!.scalars == unfused[1]!.scalars)
    }

    @Test func keptNodesSplitChains() {
        // bn1 kept: conv1 + bn1 fold, relu6 runs alone.
        #expect(fusedNodes(last: 16, materialised: [2]) == [2, 6, 9, 11, 13])
        // conv1 kept: nothing folds into it; bn1 and relu6 run alone.
        #expect(fusedNodes(last: 16, materialised: [1]) == [6, 9, 11, 13])
        #expect(fusedNodes(last: 16, materialised: [4]) == [3, 9, 11, 13])
        // bn3 kept: the add runs alone.
        #expect(fusedNodes(last: 16, materialised: [8]) == [3, 6, 8, 11, 13])
        #expect(fusedNodes(last: 16, materialised: [12]) == [3, 6, 9, 11])
        // Stopping inside a chain ends it there.
        #expect(fusedNodes(last: 5, materialised: []) == [3, 5])
    }

    @Test func backwardRegionIsUnfusedAndGradientsMatch() throws {
        let x = input()
        let unfused = try network.forward(x, keepAll: true)
        var seed = Tensor(zeros: unfused[15]!.shape)
        seed.scalars[1] = 1
        seed.scalars[3 + 2] = 1
        for to in [0, 3, 6, 9, 11] {
            let trace = try network.forward(x, stopAfter: 15, backwardTo: to)
            let g = try network.backward(from: 15, seed: seed, to: to, trace: trace)
            let reference = try network.backward(from: 15, seed: seed, to: to, trace: unfused)
            expectClose(g, reference, "gradient at \(network.nodes[to].name)")
            expectClose(trace[to], unfused[to], "activation at \(network.nodes[to].name)")
        }
        // Down to the input: every node is kept except a BatchNormalization read only by a
        // ReLU or ReLU6 and a convolution read only by such a pair (conv1 → bn1 → relu6 runs
        // as one fused step; backward crosses the ReLU6 from its output, bn1 by its scale,
        // conv1 from its input); the kept nodes and the gradients, plain and guided, are the
        // unfused ones up to the folded weights' rounding.
        let all = try network.forward(x, stopAfter: 15, backwardTo: 0)
        let crossed = network.crossings(upTo: 15)
        #expect(crossed.keys.sorted() == [1, 2])
        #expect(crossed.kind(2) == "affineBeforeReLU", "the fixture's BatchNormalization → ReLU6 pair")
        #expect(crossed.kind(1) == "convolutionBeforeCrossedAffine", "the convolution before the pair")
        for id in 0...15 {
            if id == 1 || id == 2 {
                #expect(all[id] == nil, "node \(id) is not kept")
            } else {
                expectClose(all[id], unfused[id], "node \(id)")
            }
        }
        for guided in [false, true] {
            let g = try network.backward(from: 15, seed: seed, to: 0, trace: all, guidedReLU: guided)
            let reference = try network.backward(from: 15, seed: seed, to: 0, trace: unfused, guidedReLU: guided)
            expectClose(g, reference, "input gradient, guided: \(guided)")
        }
    }

    @Test func everyFusedActivationMatchesItsLayer() throws {
        var rng = SplitMix64(seed: 3)
        let functions: [ActivationFunction] = [
            .relu(), .relu(maxValue: 6), .relu(maxValue: 2.5), .relu(negativeSlope: 0.3), .sigmoid, .tanh, .swish,
            .hardSwish,
        ]
        let kernel = rng.tensor([3, 3, 4, 5], -1, 1)
        let bias = rng.tensor([5])
        let x = rng.tensor([2, 7, 7, 4], -3, 3)
        for function in functions {
            let conv = Conv2D(
                name: "conv", kernel: kernel, bias: bias, strides: [1, 1], padding: .same, dilation: [1, 1])
            let act = Activation(name: "act", function: function)
            #expect(act.postOp != nil, "\(function) has no post-op")
            let nodes = [
                Network.Node(id: 0, layer: nil, inputs: [], outputShape: [7, 7, 4]),
                Network.Node(id: 1, layer: conv, inputs: [0], outputShape: [7, 7, 5]),
                Network.Node(id: 2, layer: act, inputs: [1], outputShape: [7, 7, 5]),
            ]
            let net = try Network(nodes: nodes, outputNode: 2)
            #expect(net.inferencePlan(last: 2, materialised: [2]).steps.count == 1)
            let unfused = try act.forward([conv.forward([x])])
            expectClose(try net.predict(x), unfused, "\(function)")
        }
        // Activations written out in Swift stay nodes of their own.
        for function: ActivationFunction in [.relu(threshold: 0.5), .elu(), .gelu, .hardSigmoid, .softmax, .linear] {
            #expect(Activation(name: "act", function: function).postOp == nil, "\(function)")
        }
    }

    @Test func zeroPaddingFoldsIntoTheConvolution() throws {
        var rng = SplitMix64(seed: 5)
        let x = rng.tensor([2, 10, 11, 4], -2, 2)
        for (padding, strides) in [(Padding.valid, [2, 2]), (.same, [1, 1]), (.valid, [1, 2])] {
            let pad = ZeroPadding2D(name: "pad", top: 0, bottom: 1, left: 1, right: 2)
            let dw = DepthwiseConv2D(
                name: "dw", kernel: rng.tensor([3, 3, 4, 2]), bias: rng.tensor([8]), strides: strides, padding: padding,
                dilation: [1, 1])
            let act = Activation(name: "relu", function: .relu())
            var nodes = [Network.Node(id: 0, layer: nil, inputs: [], outputShape: [10, 11, 4])]
            let layers: [any Layer] = [pad, dw, act]
            for (i, layer) in layers.enumerated() {
                let shape = try layer.outputShape(for: [nodes[i].outputShape])
                nodes.append(Network.Node(id: i + 1, layer: layer, inputs: [i], outputShape: shape))
            }
            let net = try Network(nodes: nodes, outputNode: 3)
            #expect(net.inferencePlan(last: 3, materialised: [3]).steps.map(\.node) == [3])
            let unfused = try net.forward(x, keepAll: true)
            expectClose(try net.predict(x), unfused[3], "pad + depthwise \(padding) \(strides) + relu")
            // The padded tensor asked for: the padding runs alone.
            #expect(net.inferencePlan(last: 3, materialised: [1, 3]).steps.map(\.node) == [1, 3])
            #expect(try net.forward(x, keep: [1])[1]!.scalars == unfused[1]!.scalars)
        }
    }

    @Test func weightedResidualsFoldIntoTheConvolution() throws {
        // InceptionResNetV2's x + 0.17·conv(x) → relu, and the same with a BN between; a
        // weight on the other addend, or an activation before a weighted sum, stays unfused.
        var rng = SplitMix64(seed: 17)
        let x = rng.tensor([2, 7, 6, 5], -2, 2)
        let bn = BatchNormalization(
            name: "bn", gamma: rng.tensor([5], 0.5, 1.5), beta: rng.tensor([5]),
            movingMean: rng.tensor([5], -0.2, 0.2), movingVariance: rng.tensor([5], 0.5, 1.5), epsilon: 1e-3)
        func conv() -> Conv2D {
            Conv2D(
                name: "up", kernel: rng.tensor([3, 3, 5, 5], -0.5, 0.5), bias: rng.tensor([5]), strides: [1, 1],
                padding: .same, dilation: [1, 1])
        }
        let relu = Activation(name: "relu", function: .relu())
        let cases: [(String, [(any Layer, [Int])], fused: Bool)] = [
            ("x + 0.17·conv", [(conv(), [0]), (Add(name: "s", coefficients: [1, 0.17]), [0, 1]), (relu, [2])], true),
            ("−0.5·conv + x", [(conv(), [0]), (Add(name: "s", coefficients: [-0.5, 1]), [1, 0]), (relu, [2])], true),
            (
                "x + 0.2·bn(conv)", [(conv(), [0]), (bn, [1]), (Add(name: "s", coefficients: [1, 0.2]), [0, 2]), (relu, [3])],
                true
            ),
            ("2·x + conv", [(conv(), [0]), (Add(name: "s", coefficients: [2, 1]), [0, 1]), (relu, [2])], false),
            ("x + 0.3·relu(conv)", [(conv(), [0]), (relu, [1]), (Add(name: "s", coefficients: [1, 0.3]), [0, 2])], false),
        ]
        for (what, layers, fused) in cases {
            let net = try Network(input: [7, 6, 5], layers)
            let last = layers.count
            let steps = net.inferencePlan(last: last, materialised: [last]).steps
            let sums = steps.filter { if case .fused(_, _, addsResidual: true) = $0.operation { return true } else { return false } }
            #expect(sums.count == (fused ? 1 : 0), "\(what): \(steps.map(\.node))")
            expectClose(try net.predict(x), try net.forward(x, keepAll: true)[last], what)
        }
    }

    @Test func batchNormalizationAndReLUWithoutAConvolutionAreOnePass() throws {
        var rng = SplitMix64(seed: 9)
        let x = rng.tensor([2, 5, 6, 7], -3, 3)
        for function in [ActivationFunction.relu(), .relu(maxValue: 6), .relu(negativeSlope: 0.1), .relu(threshold: 0.5)] {
            let bn = BatchNormalization(
                name: "bn", gamma: rng.tensor([7], 0.5, 1.5), beta: rng.tensor([7]),
                movingMean: rng.tensor([7], -0.2, 0.2), movingVariance: rng.tensor([7], 0.5, 1.5), epsilon: 1e-3)
            let nodes = [
                Network.Node(id: 0, layer: nil, inputs: [], outputShape: [5, 6, 7]),
                Network.Node(id: 1, layer: bn, inputs: [0], outputShape: [5, 6, 7]),
                Network.Node(id: 2, layer: Activation(name: "act", function: function), inputs: [1], outputShape: [5, 6, 7]),
            ]
            let net = try Network(nodes: nodes, outputNode: 2)
            #expect(net.inferencePlan(last: 2, materialised: [2]).steps.map(\.node) == [2])
            // The same operations in the same order as the two layers: the same bits.
            #expect(try net.predict(x).scalars == net.forward(x, keepAll: true)[2]!.scalars, "\(function)")
            #expect(net.inferencePlan(last: 2, materialised: [1, 2]).steps.map(\.node) == [1, 2])
        }
    }

    /// VGG's and MobileNet's pattern, convolution → ReLU (or ReLU6): a forward pass
    /// for a backward pass to the input runs each pair as one fused convolution and
    /// does not keep the convolution's output — backward reads the ReLU's output
    /// instead — and the gradients, plain and guided, are the layer-by-layer ones.
    @Test func convolutionReLUPairsAreFusedForBackwardWithoutTheirInnerOutput() throws {
        var rng = SplitMix64(seed: 21)
        let layers: [(any Layer, [Int])] = [
            (
                Conv2D(
                    name: "c1", kernel: rng.tensor([3, 3, 3, 6]), bias: rng.tensor([6]), strides: [1, 1], padding: .same, dilation: [1, 1]),
                [0]
            ),
            (Activation(name: "r1", function: .relu()), [1]),
            (
                DepthwiseConv2D(
                    name: "dw", kernel: rng.tensor([3, 3, 6, 1]), bias: rng.tensor([6]), strides: [2, 2], padding: .same, dilation: [1, 1]),
                [2]
            ),
            (Activation(name: "r2", function: .relu(maxValue: 6)), [3]),
            (
                Conv2D(
                    name: "c2", kernel: rng.tensor([1, 1, 6, 5]), bias: rng.tensor([5]), strides: [1, 1], padding: .valid, dilation: [1, 1]),
                [4]
            ),
            (Activation(name: "r3", function: .relu()), [5]),
            (GlobalAveragePooling2D(name: "gap", keepDims: false), [6]),
        ]
        var nodes = [Network.Node(id: 0, layer: nil, inputs: [], outputShape: [8, 8, 3])]
        let shapes = [[8, 8, 6], [8, 8, 6], [4, 4, 6], [4, 4, 6], [4, 4, 5], [4, 4, 5], [5]]
        for (k, (layer, inputs)) in layers.enumerated() {
            nodes.append(Network.Node(id: k + 1, layer: layer, inputs: inputs, outputShape: shapes[k]))
        }
        let net = try Network(nodes: nodes, outputNode: 7)
        #expect(net.crossings(upTo: 7).keys.sorted() == [1, 3, 5])
        #expect([1, 3, 5].allSatisfy { net.crossings(upTo: 7).kind($0) == "convolutionBeforeReLU" })
        let x = rng.tensor([2, 8, 8, 3], -2, 2)
        try expectCrossedToTheInput(net, x, notKept: [1, 3, 5])
        // Asked to keep a convolution, or to stop the gradient at one, it stays.
        #expect(try net.forward(x, stopAfter: 7, keep: [3], backwardTo: 0)[3] != nil)
        #expect(try net.forward(x, stopAfter: 7, backwardTo: 3)[3] != nil)
    }

    @Test func convolutionBatchNormalizationReLUTriplesKeepNeitherInnerOutput() throws {
        var rng = SplitMix64(seed: 23)
        func bn(_ name: String, _ c: Int) -> BatchNormalization {
            BatchNormalization(
                name: name, gamma: rng.tensor([c], 0.5, 1.5), beta: rng.tensor([c]),
                movingMean: rng.tensor([c], -0.2, 0.2), movingVariance: rng.tensor([c], 0.5, 1.5), epsilon: 1e-3)
        }
        let net = try Network(
            input: [8, 8, 3],
            [
                (
                    Conv2D(
                        name: "c1", kernel: rng.tensor([3, 3, 3, 6]), bias: nil, strides: [1, 1], padding: .same,
                        dilation: [1, 1]), [0]
                ),
                (bn("bn1", 6), [1]), (Activation(name: "r1", function: .relu()), [2]),
                (
                    DepthwiseConv2D(
                        name: "dw", kernel: rng.tensor([3, 3, 6, 1]), bias: nil, strides: [2, 2], padding: .same,
                        dilation: [1, 1]), [3]
                ),
                (bn("bn2", 6), [4]), (Activation(name: "r2", function: .relu(maxValue: 6)), [5]),
                (
                    Conv2D(
                        name: "c2", kernel: rng.tensor([1, 1, 6, 5]), bias: rng.tensor([5]), strides: [1, 1],
                        padding: .valid, dilation: [1, 1]), [6]
                ),
                // bn3 has two readers: the pair is not crossed, bn3 and c2 stay.
                (bn("bn3", 5), [7]), (Activation(name: "r3", function: .relu()), [8]),
                (Add(name: "skip", coefficients: nil), [9, 8]),
                (GlobalAveragePooling2D(name: "gap", keepDims: false), [10]),
            ])
        let crossed = net.crossings(upTo: 11)
        #expect(crossed.keys.sorted() == [1, 2, 4, 5], "bn3 has two readers: neither it nor c2 is crossed")
        #expect([1, 4].map { crossed.kind($0) } == ["convolutionBeforeCrossedAffine", "convolutionBeforeCrossedAffine"])
        #expect([2, 5].map { crossed.kind($0) } == ["affineBeforeReLU", "affineBeforeReLU"])
        let x = rng.tensor([2, 8, 8, 3], -2, 2)
        try expectCrossedToTheInput(net, x, notKept: [1, 2, 4, 5])
        let unfused = try net.forward(x, keepAll: true)
        var seed = Tensor(zeros: [2, 5])
        seed.scalars[2] = 1
        seed.scalars[5 + 4] = -1
        // Stopping the gradient at a crossed convolution or its BatchNormalization keeps it.
        for to in [1, 2, 4] {
            let t = try net.forward(x, stopAfter: 11, backwardTo: to)
            expectClose(t[to], unfused[to], "node \(to) as the gradient's end")
            expectClose(
                try net.backward(from: 11, seed: seed, to: to, trace: t), try net.backward(from: 11, seed: seed, to: to, trace: unfused),
                "gradient at node \(to)")
        }
    }

    @Test func concurrentForwardPassesShareOnePlan() async throws {
        let x = input(batch: 1)
        let expected = try network.forward(x, keepAll: true)[16]!
        try await withThrowingTaskGroup(of: Tensor.self) { group in
            for k in 0..<8 {
                group.addTask { try network.forward(x, stopAfter: 16, keep: k.isMultiple(of: 2) ? [] : [5])[16]! }
            }
            for try await y in group { expectClose(y, expected, "concurrent output") }
        }
    }
}

extension [Int: Crossing] {
    /// The case name of node `id`'s crossing, nil when it is not crossed.
    fileprivate func kind(_ id: Int) -> String? {
        switch self[id] {
        case .affineBeforeReLU: return "affineBeforeReLU"
        case .convolutionBeforeReLU: return "convolutionBeforeReLU"
        case .convolutionBeforeCrossedAffine: return "convolutionBeforeCrossedAffine"
        case nil: return nil
        }
    }
}
