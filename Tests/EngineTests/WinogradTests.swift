import Testing

@testable import Engine

/// Fast numerics: Winograd for 3×3 stride-1 convolutions where oneDNN has it on
/// this CPU, the direct convolution everywhere else, and the same numbers as the
/// exact path to float32 rounding. Every case asserts on every machine: which
/// kernel ran follows `DNNLConvolution.winogradAvailable`.
@Suite struct WinogradTests {
    /// max|got − want| ≤ 1e-4 of want's range (max − min).
    func expectWithinRange(_ got: Tensor, _ want: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(got.shape == want.shape, "\(what): shape", sourceLocation: sourceLocation)
        let range = (want.scalars.max() ?? 0) - (want.scalars.min() ?? 0)
        let err = got.maxAbsDifference(want)
        #expect(err <= 1e-4 * range, "\(what): max error \(err), range \(range)", sourceLocation: sourceLocation)
    }

    /// The forward result and the input gradient (dense output gradient) of `layer`,
    /// with the names of the kernels that computed them.
    func run(_ layer: Conv2D, _ x: Tensor, _ y: Tensor, _ numerics: Numerics) throws
        -> (out: Tensor, grad: Tensor, forward: String, backward: String)
    {
        let conv = try #require(layer.convolution.conv)
        return try Numerics.$current.withValue(numerics) {
            let out = try layer.forward([x])
            let grad = try layer.backward([x], output: out, outputGradient: y)[0]
            return (
                out, grad, try conv.forwardImplementation(inputShape: x.shape),
                try conv.backwardImplementation(inputShape: x.shape)
            )
        }
    }

    @Test(arguments: [
        // odd sizes (partial 4×4 output tiles), 'same' and 'valid', with and without bias
        ([2, 13, 11, 32], [3, 3, 32, 48], Padding.same, true),
        ([1, 9, 10, 16], [3, 3, 16, 16], Padding.valid, false),
        ([3, 8, 8, 64], [3, 3, 64, 24], Padding.same, true),
    ]) func fastMatchesExactAndSaysWhichKernelRan(input: [Int], kernel: [Int], padding: Padding, bias: Bool) throws {
        var rng = SplitMix64(seed: 41)
        let layer = Conv2D(
            name: "wide", kernel: rng.tensor(kernel, -0.2, 0.2), bias: bias ? rng.tensor([kernel[3]]) : nil,
            strides: [1, 1], padding: padding, dilation: [1, 1])
        let x = rng.tensor(input)
        let y = rng.tensor(try layer.forward([x]).shape)
        let fast = try run(layer, x, y, .fast)
        let exact = try run(layer, x, y, .exact)
        expectWithinRange(fast.out, exact.out, "forward")
        expectWithinRange(fast.grad, exact.grad, "backward to the input")
        // Plans are kept per numerics: the exact ones never became Winograd.
        #expect(!exact.forward.contains("wino") && !exact.backward.contains("wino"), "\(exact.forward), \(exact.backward)")
        let winograd = DNNLConvolution.winogradAvailable
        #expect(fast.forward.contains("wino") == winograd, "forward ran \(fast.forward)")
        #expect(fast.backward.contains("wino") == winograd, "backward ran \(fast.backward)")
        if !winograd {
            #expect(fast.out.scalars == exact.out.scalars && fast.grad.scalars == exact.grad.scalars)
        }
    }

    /// Shapes Winograd does not take or does not pay for stay direct in fast mode,
    /// with identical results: an image's 3 channels, stride 2, dilation 2, a 5×5 kernel.
    @Test(arguments: [
        ([1, 12, 12, 3], [3, 3, 3, 32], [1, 1], [1, 1]),
        ([1, 12, 12, 32], [3, 3, 32, 32], [2, 2], [1, 1]),
        ([1, 12, 12, 32], [3, 3, 32, 32], [1, 1], [2, 2]),
        ([1, 12, 12, 32], [5, 5, 32, 32], [1, 1], [1, 1]),
    ]) func otherShapesStayDirect(input: [Int], kernel: [Int], strides: [Int], dilation: [Int]) throws {
        var rng = SplitMix64(seed: 42)
        let layer = Conv2D(
            name: "direct", kernel: rng.tensor(kernel), bias: nil, strides: strides, padding: .same, dilation: dilation)
        let x = rng.tensor(input)
        let y = rng.tensor(try layer.forward([x]).shape)
        let fast = try run(layer, x, y, .fast)
        let exact = try run(layer, x, y, .exact)
        #expect(!fast.forward.contains("wino") && !fast.backward.contains("wino"), "\(fast.forward), \(fast.backward)")
        #expect(fast.out.scalars == exact.out.scalars)
        #expect(fast.grad.scalars == exact.grad.scalars)
    }
}
