import Testing

@testable import Engine

/// GroupNormalization, RMS/Unit normalisation, adaptive pooling, Permute and grouped
/// convolutions through the generic layer checks: finite differences for the
/// non-linear ones, the adjoint test for the linear ones, batch consistency, and
/// errors naming the layer. Their numbers against Keras are in `LayerFixtureTests`.
@Suite struct UserModelLayerTests {
    @Test func normalisationsHaveTheGradientOfTheirForwardPass() throws {
        var rng = SplitMix64(seed: 21)
        let layers: [any Layer] = [
            GroupNormalization(name: "gn", groups: 2, gamma: rng.tensor([4], 0.5, 1.5), beta: rng.tensor([4]), epsilon: 1e-3),
            GroupNormalization(name: "gn_bare", groups: 4, gamma: nil, beta: nil, epsilon: 1e-3),
            RootMeanSquareScaling(
                name: "rms", kind: "RMSNormalization", scale: rng.tensor([4], 0.5, 1.5), meanOverChannels: true, epsilon: 1e-6),
            RootMeanSquareScaling.unitNormalization(name: "unit"),
        ]
        for layer in layers {
            try expectFiniteDifferences(layer, input: rng.tensor([2, 3, 2, 4]), eps: 1e-2, tol: 2e-3)
            try expectBatchConsistent(layer, sampleShapes: [[3, 2, 4]])
        }
    }

    @Test func unitNormalisationOfZeroIsZeroWithAFiniteGradient() throws {
        let unit = RootMeanSquareScaling.unitNormalization(name: "unit")
        let zero = Tensor(zeros: [1, 1, 1, 3])
        let y = try unit.forward([zero])
        #expect(y.scalars == [0, 0, 0])
        let g = try unit.backward([zero], output: y, outputGradient: Tensor(shape: [1, 1, 1, 3], scalars: [1, 1, 1]))
        #expect(g[0].scalars.allSatisfy { $0.isFinite })
    }

    @Test func adaptivePoolingWindowsCoverTheMapAsKerasCutsIt() throws {
        // 5 rows into 3 windows: [0, 2), [1, 4), [3, 5).
        let avg = AdaptivePooling2D(name: "avg", max: false, outputSize: [3, 1])
        let x = Tensor(shape: [1, 5, 1, 1], scalars: [1, 2, 3, 4, 5])
        #expect(try avg.forward([x]).scalars == [1.5, 3, 4.5])
        let mx = AdaptivePooling2D(name: "max", max: true, outputSize: [3, 1])
        #expect(try mx.forward([x]).scalars == [2, 4, 5])
        try expectAdjoint(AdaptivePooling2D(name: "avg2", max: false, outputSize: [3, 4]), inputShapes: [[2, 7, 5, 3]])
        var rng = SplitMix64(seed: 2)
        try expectFiniteDifferences(AdaptivePooling2D(name: "max2", max: true, outputSize: [2, 3]), input: rng.tensor([1, 5, 7, 2]))
        expectShapeMismatch("bad") {
            _ = try AdaptivePooling2D(name: "bad", max: false, outputSize: [0, 2]).outputShape(for: [[4, 4, 1]])
        }
    }

    @Test func swappingRowsAndColumnsIsItsOwnTranspose() throws {
        let swap = SwapSpatialAxes(name: "swap")
        let x = Tensor(shape: [1, 2, 3, 1], scalars: [1, 2, 3, 4, 5, 6])
        let y = try swap.forward([x])
        #expect(y.shape == [1, 3, 2, 1] && y.scalars == [1, 4, 2, 5, 3, 6])
        try expectAdjoint(swap, inputShapes: [[2, 3, 4, 2]])
    }

    @Test func groupedConvolutionEqualsOneConvolutionPerGroup() throws {
        var rng = SplitMix64(seed: 9)
        let kernel = rng.tensor([3, 3, 2, 6])
        let bias = rng.tensor([6])
        let grouped = GroupedConv2D(
            name: "g", kernel: kernel, bias: bias, groups: 3, strides: [1, 2], padding: .same, dilation: [1, 1])
        let x = rng.tensor([2, 5, 6, 6])
        let y = try grouped.forward([x])
        // Group k: input channels 2k..<2k+2 against filters 2k..<2k+2, by the naive reference.
        for k in 0..<3 {
            let xs = Tensor(shape: [2, 5, 6, 2], scalars: (0..<(2 * 5 * 6)).flatMap { p in (0..<2).map { x.scalars[p * 6 + 2 * k + $0] } })
            let ks = Tensor(shape: [3, 3, 2, 2], scalars: (0..<18).flatMap { p in (0..<2).map { kernel.scalars[p * 6 + 2 * k + $0] } })
            let bs = Tensor(shape: [2], scalars: Array(bias.scalars[(2 * k)..<(2 * k + 2)]))
            let want = referenceConv2D(xs, kernel: ks, bias: bs, strides: [1, 2], padding: .same, dilation: [1, 1])
            let got = Tensor(
                shape: want.shape, scalars: (0..<(want.count / 2)).flatMap { p in (0..<2).map { y.scalars[p * 6 + 2 * k + $0] } })
            expectClose(got, want, tol: 1e-4, "group \(k)")
        }
        try expectAdjoint(grouped, inputShapes: [[2, 5, 6, 6]])
        expectShapeMismatch("g") { _ = try grouped.forward([rng.tensor([1, 5, 6, 4])]) }
        expectShapeMismatch("bad") {
            _ = try GroupedConv2D(name: "bad", kernel: kernel, bias: nil, groups: 4, strides: [1, 1], padding: .same, dilation: [1, 1])
                .outputShape(for: [[5, 6, 8]])
        }
    }
}
