import Testing

@testable import Engine

/// The engine's speed paths, each against the plain definition:
/// - stride-1 convolution backward computed as a forward convolution with the
///   flipped kernel (asymmetric 'same' padding included);
/// - convolution backward skipping output channels whose gradient is all zero
///   (what filter visualisation seeds: one channel per image);
/// - max-pool backward's vectorised path for non-overlapping windows.
@Suite struct FastPathTests {
    /// <J v, y> == <v, Jᵀ y> for a given (possibly sparse) y.
    func expectAdjoint(_ layer: any Layer, input: Tensor, outputGradient y: Tensor) throws {
        let fv = try layer.forward([input])
        let jv = subtract(fv, try layer.forward([Tensor(zeros: input.shape)]))
        let g = try layer.backward([input], output: fv, outputGradient: y)[0]
        #expect(g.shape == input.shape)
        let lhs = dot(jv, y)
        let rhs = dot(input, g)
        #expect(abs(lhs - rhs) <= 1e-4 * max(norm(jv) * norm(y), 1e-6), "\(layer.name): \(lhs) vs \(rhs)")
    }

    @Test(arguments: [
        // even kernels at stride 1: TF 'same' pads one more after than before
        ([1, 6, 7, 3], [4, 2, 3, 5]),
        ([2, 5, 5, 4], [2, 2, 4, 3]),
        ([1, 9, 8, 3], [3, 3, 3, 16]),
    ]) func flippedKernelBackwardWithAsymmetricSamePadding(input: [Int], kernel: [Int]) throws {
        var rng = SplitMix64(seed: 21)
        let conv = Conv2D(
            name: "even", kernel: rng.tensor(kernel), bias: rng.tensor([kernel[3]]),
            strides: [1, 1], padding: .same, dilation: [1, 1])
        let x = rng.tensor(input)
        let y = rng.tensor(try conv.forward([x]).shape)
        try expectAdjoint(conv, input: x, outputGradient: y)
    }

    @Test func backwardWithGradientInFewChannelsOrNone() throws {
        var rng = SplitMix64(seed: 22)
        let conv = Conv2D(
            name: "sparse", kernel: rng.tensor([3, 3, 8, 16]), bias: nil,
            strides: [1, 1], padding: .same, dilation: [1, 1])
        let x = rng.tensor([3, 10, 10, 8])
        let out = try conv.forward([x])
        // Image n's gradient lives in channel 2n+1 only (as a filter grid seeds it).
        var sparse = Tensor(zeros: out.shape)
        let (hw, c) = (out.shape[1] * out.shape[2], out.shape[3])
        for n in 0..<3 { for p in 0..<hw { sparse.scalars[(n * hw + p) * c + 2 * n + 1] = rng.uniform() } }
        try expectAdjoint(conv, input: x, outputGradient: sparse)
        // The same gradient through the dense path (all channels live, the others tiny)
        // must agree element-wise with the sparse one where the extra terms vanish.
        var dense = sparse
        for i in dense.scalars.indices where dense.scalars[i] == 0 { dense.scalars[i] = 1e-30 }
        let gs = try conv.backward([x], output: out, outputGradient: sparse)[0]
        let gd = try conv.backward([x], output: out, outputGradient: dense)[0]
        expectClose(gs, gd, tol: 1e-5, "sparse vs dense gradient")
        // No gradient at all: exactly zero.
        let g0 = try conv.backward([x], output: out, outputGradient: Tensor(zeros: out.shape))[0]
        #expect(g0.scalars.allSatisfy { $0 == 0 })
        #expect(g0.shape == x.shape)
    }

    @Test(arguments: [[1, 8, 8, 16], [2, 6, 10, 9], [1, 4, 4, 64]])
    func maxPoolBackwardNonOverlappingManyChannels(shape: [Int]) throws {
        var rng = SplitMix64(seed: 23)
        let pool = MaxPooling2D(name: "pool", poolSize: [2, 2], strides: [2, 2], padding: .valid)
        let x = rng.tensor(shape)  // continuous random values: every window has one maximum
        let y = try pool.forward([x])
        expectClose(y, referencePool(x, max: true, pool: [2, 2], strides: [2, 2], padding: .valid), "pool forward")
        let gy = rng.tensor(y.shape)
        let gx = try pool.backward([x], output: y, outputGradient: gy)[0]
        // Each window passes its gradient to its maximum and nothing elsewhere.
        var want = Tensor(zeros: x.shape)
        let (h, w, c) = (shape[1], shape[2], shape[3])
        for n in 0..<shape[0] {
            for oy in 0..<(h / 2) {
                for ox in 0..<(w / 2) {
                    for ch in 0..<c {
                        var best = -Float.infinity
                        var at = 0
                        for dy in 0..<2 {
                            for dx in 0..<2 {
                                let i = ((n * h + 2 * oy + dy) * w + 2 * ox + dx) * c + ch
                                if x.scalars[i] > best {
                                    best = x.scalars[i]
                                    at = i
                                }
                            }
                        }
                        want.scalars[at] += gy.scalars[((n * (h / 2) + oy) * (w / 2) + ox) * c + ch]
                    }
                }
            }
        }
        expectClose(gx, want, tol: 0, "pool backward")
    }
}
