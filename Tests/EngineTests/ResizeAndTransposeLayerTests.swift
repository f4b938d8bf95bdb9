import Testing

@testable import Engine

/// The resize layers (`Resize2D`), `Conv2DTranspose` and `Extremum` through the generic
/// layer checks: backward is the transpose of forward (adjoint test; `area` has no
/// TensorFlow gradient to compare with, so this is its backward's check), a batch equals
/// its samples, and malformed shapes are errors naming the layer. Their numbers against
/// Keras are in KerasFormatTests' `LayerFixtureTests`.
@Suite struct ResizeAndTransposeLayerTests {
    static let resizes: [Resize2D] = {
        var layers: [Resize2D] = []
        for method in ResizeInterpolation.allCases {
            layers.append(Resize2D(name: "down_\(method)", kind: "Resizing", size: .fixed(height: 4, width: 5), interpolation: method))
            layers.append(Resize2D(name: "up_\(method)", kind: "Resizing", size: .fixed(height: 11, width: 9), interpolation: method))
            layers.append(
                Resize2D(name: "scale_\(method)", kind: "UpSampling2D", size: .scaled(height: 2, width: 3), interpolation: method))
        }
        for antialiased in [ResizeInterpolation.bilinear, .bicubic, .lanczos3] {
            layers.append(
                Resize2D(
                    name: "aa_\(antialiased)", kind: "Resizing", size: .fixed(height: 3, width: 4), interpolation: antialiased,
                    antialias: true))
        }
        layers.append(Resize2D(name: "crop_aspect", kind: "Resizing", size: .fixed(height: 6, width: 6), fit: .cropToAspect))
        layers.append(Resize2D(name: "pad_aspect", kind: "Resizing", size: .fixed(height: 8, width: 4), fit: .padToAspect(fill: 0)))
        layers.append(Resize2D(name: "centre_crop", kind: "CenterCrop", size: .fixed(height: 5, width: 4), fit: .centreCrop))
        layers.append(Resize2D(name: "centre_resize", kind: "CenterCrop", size: .fixed(height: 9, width: 12), fit: .centreCrop))
        return layers
    }()

    @Test(arguments: resizes)
    func resizeBackwardIsTheTransposeOfForward(_ layer: Resize2D) throws {
        try expectAdjoint(layer, inputShapes: [[2, 7, 8, 3]])
        try expectBatchConsistent(layer, sampleShapes: [[7, 8, 3]])
        #expect(try layer.outputShape(for: [[7, 8, 3]]) == Array(try layer.forward([Tensor(zeros: [1, 7, 8, 3])]).shape.dropFirst()))
    }

    @Test func resizeRefusesMalformedInput() throws {
        let layer = Resize2D(name: "r", kind: "Resizing", size: .fixed(height: 0, width: 3))
        expectShapeMismatch("r") { _ = try layer.outputShape(for: [[4, 4, 1]]) }
        let up = Resize2D(name: "u", kind: "UpSampling2D", size: .scaled(height: 1 << 20, width: 2))
        expectShapeMismatch("u") { _ = try up.forward([Tensor(zeros: [1, 1 << 10, 2, 1])]) }
        expectShapeMismatch("u") { _ = try up.outputShape(for: [[Int.max / 2, 2, 1]]) }
    }

    @Test func paddingToTheAspectFillsWithTheValueAndGivesItNoGradient() throws {
        let layer = Resize2D(name: "p", kind: "Resizing", size: .fixed(height: 4, width: 2), fit: .padToAspect(fill: 0.5))
        // A 2×2 map padded to aspect 2:1 is 4×2 (one row above, one below), then not resized.
        let x = Tensor(shape: [1, 2, 2, 1], scalars: [1, 2, 3, 4])
        let y = try layer.forward([x])
        #expect(y.scalars == [0.5, 0.5, 1, 2, 3, 4, 0.5, 0.5])
        let g = try layer.backward([x], output: y, outputGradient: Tensor(shape: y.shape, scalars: [9, 9, 1, 2, 3, 4, 9, 9]))
        #expect(g[0].scalars == [1, 2, 3, 4])
    }

    static let transposes: [Conv2DTranspose] = {
        var rng = SplitMix64(seed: 3)
        var layers: [Conv2DTranspose] = []
        for (padding, strides, kernel, outputPadding) in [
            (Padding.same, [2, 2], [3, 3], nil), (.valid, [2, 2], [3, 3], nil), (.same, [2, 1], [3, 2], [1, 0]),
            (.valid, [3, 3], [2, 2], [2, 1]), (.same, [1, 1], [3, 3], nil),
        ] as [(Padding, [Int], [Int], [Int]?)] {
            layers.append(
                Conv2DTranspose(
                    name: "t_\(padding)_\(strides)_\(kernel)_\(outputPadding ?? [])", kernel: rng.tensor(kernel + [4, 3]),
                    bias: rng.tensor([4]), strides: strides, padding: padding, outputPadding: outputPadding, dilation: [1, 1]))
        }
        return layers
    }()

    @Test(arguments: transposes)
    func transposedConvolutionBackwardIsTheTransposeOfForward(_ layer: Conv2DTranspose) throws {
        try expectAdjoint(layer, inputShapes: [[2, 5, 4, 3]])
        try expectBatchConsistent(layer, sampleShapes: [[5, 4, 3]])
        #expect(try layer.outputShape(for: [[5, 4, 3]]) == Array(try layer.forward([Tensor(zeros: [1, 5, 4, 3])]).shape.dropFirst()))
    }

    @Test func transposedConvolutionRefusesBadOutputPaddingAndChannels() throws {
        var rng = SplitMix64(seed: 4)
        let bad = Conv2DTranspose(
            name: "t", kernel: rng.tensor([3, 3, 2, 2]), bias: nil, strides: [2, 2], padding: .same, outputPadding: [2, 0],
            dilation: [1, 1])
        expectShapeMismatch("t") { _ = try bad.forward([Tensor(zeros: [1, 3, 3, 2])]) }
        let ok = Conv2DTranspose(
            name: "u", kernel: rng.tensor([3, 3, 2, 2]), bias: nil, strides: [2, 2], padding: .same, outputPadding: nil,
            dilation: [1, 1])
        expectShapeMismatch("u") { _ = try ok.forward([Tensor(zeros: [1, 3, 3, 5])]) }
    }

    @Test func extremumSendsTheGradientToTheFirstInputHoldingTheExtreme() throws {
        let a = Tensor(shape: [1, 4], scalars: [1, 5, 2, 7])
        let b = Tensor(shape: [1, 4], scalars: [3, 5, 1, 7])
        let c = Tensor(shape: [1, 4], scalars: [0, 6, 2, 7])
        let maximum = Extremum(name: "max", largest: true)
        let y = try maximum.forward([a, b, c])
        #expect(y.scalars == [3, 6, 2, 7])
        let g = try maximum.backward([a, b, c], output: y, outputGradient: Tensor(shape: [1, 4], scalars: [1, 2, 3, 4]))
        #expect(g.map(\.scalars) == [[0, 0, 3, 4], [1, 0, 0, 0], [0, 2, 0, 0]])
        let minimum = Extremum(name: "min", largest: false)
        #expect(try minimum.forward([a, b]).scalars == [1, 5, 1, 7])
        try expectAdjoint(minimum, inputShapes: [[2, 3, 3, 2], [2, 3, 3, 2]])
        expectShapeMismatch("min") { _ = try minimum.forward([a, Tensor(zeros: [1, 3])]) }
    }
}
