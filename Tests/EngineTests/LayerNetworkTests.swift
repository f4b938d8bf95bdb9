import Testing

@testable import Engine

/// A small DAG built from the engine's layers:
///
///     0 input [6,6,2]
///     1 conv 3x3 same → 4          2 tanh(1)
///     3 conv 3x3 same → 4 (2)      4 depthwise 3x3 same (2)
///     5 add(2, 3, 4)               — three paths meet: the gradient at 2 accumulates
///     6 avg pool 3x3 /2 same       7 batch norm
///     8 global average pool        9 dense → 3        10 softmax
@Suite struct LayerNetworkTests {
    let layers: [any Layer]
    let network: Network

    init() throws {
        var rng = SplitMix64(seed: 91)
        let bn = BatchNormalization(
            name: "bn", gamma: rng.tensor([4], 0.5, 1.5), beta: rng.tensor([4]),
            movingMean: rng.tensor([4], -0.2, 0.2), movingVariance: rng.tensor([4], 0.5, 1.5),
            epsilon: 1e-3)
        layers = [
            Conv2D(
                name: "conv1", kernel: rng.tensor([3, 3, 2, 4], -0.5, 0.5), bias: rng.tensor([4]), strides: [1, 1],
                padding: .same, dilation: [1, 1]),
            Activation(name: "conv1/tanh", function: .tanh),
            Conv2D(
                name: "conv2", kernel: rng.tensor([3, 3, 4, 4], -0.5, 0.5), bias: nil, strides: [1, 1],
                padding: .same, dilation: [1, 1]),
            DepthwiseConv2D(
                name: "dw", kernel: rng.tensor([3, 3, 4, 1]), bias: rng.tensor([4]), strides: [1, 1],
                padding: .same, dilation: [1, 1]),
            Add(name: "add"),
            AveragePooling2D(name: "pool", poolSize: [3, 3], strides: [2, 2], padding: .same),
            bn,
            GlobalAveragePooling2D(name: "gap", keepDims: false),
            Dense(name: "fc", kernel: rng.tensor([4, 3]), bias: rng.tensor([3])),
            Activation(name: "softmax", function: .softmax),
        ]
        let wiring: [[Int]] = [[0], [1], [2], [2], [2, 3, 4], [5], [6], [7], [8], [9]]
        var nodes = [Network.Node(id: 0, layer: nil, inputs: [], outputShape: [6, 6, 2])]
        for (i, layer) in layers.enumerated() {
            let shape = try layer.outputShape(for: wiring[i].map { nodes[$0].outputShape })
            nodes.append(Network.Node(id: i + 1, layer: layer, inputs: wiring[i], outputShape: shape))
        }
        network = try Network(nodes: nodes, outputNode: 10)
    }

    /// The network's output computed from node 2's output `h` by hand, layer by layer.
    func downstream(fromNode2 h: Tensor) throws -> Tensor {
        let c2 = try layers[2].forward([h])
        let d = try layers[3].forward([h])
        var t = try layers[4].forward([h, c2, d])
        for i in 5..<10 { t = try layers[i].forward([t]) }
        return t
    }

    @Test func shapesPropagate() throws {
        #expect(network.outputShape == [3])
        #expect(network.nodes[6].outputShape == [3, 3, 4])
        #expect(try network.outputShapes(forInput: [7, 5, 2])[6] == [4, 3, 4])
    }

    /// Central differences (ε = 1e-2, Float forward, Double sums) against the
    /// back-propagated gradient of L = ⟨seed, softmax output⟩, to the input and
    /// to node 2. Observed worst error ~4e-6 (gradients up to ~0.015);
    /// tolerance 5e-5 absolute. A dropped Add branch gives errors of ~2e-2.
    @Test func backwardMatchesFiniteDifferences() throws {
        var rng = SplitMix64(seed: 92)
        let x = rng.tensor([2, 6, 6, 2])
        let trace = try network.forward(x, keepAll: true)
        let seed = rng.tensor([2, 3])
        let out = trace[10]!
        #expect(out.shape == [2, 3])

        let eps: Float = 1e-2
        func loss(_ y: Tensor) -> Double { dot(seed, y) }

        // To the input.
        let gx = try network.backward(from: 10, seed: seed, to: 0, trace: trace)
        #expect(gx.shape == x.shape)
        var worst = 0.0
        for i in 0..<x.count {
            var xp = x
            var xm = x
            xp.scalars[i] += eps
            xm.scalars[i] -= eps
            let fd = (loss(try network.predict(xp)) - loss(try network.predict(xm))) / Double(2 * eps)
            worst = max(worst, abs(fd - Double(gx.scalars[i])))
        }
        #expect(gx.maxAbs > 0)
        #expect(worst <= 5e-5, "input gradient: worst error \(worst), max \(gx.maxAbs)")

        // To an intermediate node (2: feeds three branches).
        let h = trace[2]!
        let gh = try network.backward(from: 10, seed: seed, to: 2, trace: trace)
        #expect(gh.shape == h.shape)
        worst = 0
        for i in 0..<h.count {
            var hp = h
            var hm = h
            hp.scalars[i] += eps
            hm.scalars[i] -= eps
            let fd = (loss(try downstream(fromNode2: hp)) - loss(try downstream(fromNode2: hm))) / Double(2 * eps)
            worst = max(worst, abs(fd - Double(gh.scalars[i])))
        }
        #expect(gh.maxAbs > 0)
        #expect(worst <= 5e-5, "node-2 gradient: worst error \(worst), max \(gh.maxAbs)")
        // The hand-built downstream agrees with the network's own forward.
        expectClose(try downstream(fromNode2: h), out, tol: 1e-6, "downstream")
    }

    @Test func batchGradientsEqualPerSampleGradients() throws {
        var rng = SplitMix64(seed: 93)
        let x = rng.tensor([3, 6, 6, 2])
        let seed = rng.tensor([3, 3])
        let g = try network.backward(from: 10, seed: seed, to: 0, trace: network.forward(x, keepAll: true))
        for i in 0..<3 {
            let gi = try network.backward(
                from: 10, seed: seed.sample(i), to: 0,
                trace: network.forward(x.sample(i), keepAll: true))
            expectClose(gi, g.sample(i), tol: 1e-5, "sample \(i)")
        }
    }
}

extension LayerNetworkTests {
    /// The footprint counts exactly the outputs a forward pass for the backward pass keeps,
    /// at the saved size and at another.
    @Test func ascentFootprintCountsWhatTheTraceKeeps() throws {
        var rng = SplitMix64(seed: 93)
        for (node, h, w) in [(5, 6, 6), (7, 9, 5), (10, 6, 6)] {
            let net = (h, w) == (6, 6) ? network : try network.withOpenInputSize()
            let trace = try net.forward(rng.tensor([2, h, w, 2]), stopAfter: node, backwardTo: 0)
            let footprint = try net.ascentFootprint(layerNode: node, height: h, width: w)
            #expect(footprint.keptElements == trace.outputs.values.reduce(0) { $0 + $1.sampleCount })
            #expect(footprint.targetElements == trace[node]!.sampleCount)
        }
    }
}
