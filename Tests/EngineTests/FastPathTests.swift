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

    /// The element-wise layers between the primitives (row-pointer loops over the
    /// compute threads, written in place where the plan hands an input over) against
    /// their plain definitions, on maps large enough to be split, and on empty maps.
    @Test func elementWiseLayersMatchTheirDefinitions() throws {
        var rng = SplitMix64(seed: 33)
        let x = rng.tensor([2, 24, 20, 96])  // 46,080 values per sample: split over threads and bands
        let w = rng.tensor([2, 1, 1, 96])
        let (hw, c) = (24 * 20, 96)

        // Squeeze-and-excite's product, and its backward.
        let multiply = Multiply(name: "se")
        var product = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count { product[i] = x.scalars[i] * w.scalars[i / (hw * c) * c + i % c] }
        expectClose(try multiply.forward([x, w]), Tensor(shape: x.shape, scalars: product), tol: 0, "multiply")
        expectClose(try multiply.forward([w, x]), Tensor(shape: x.shape, scalars: product), tol: 0, "multiply, weights first")
        let g = rng.tensor(x.shape)
        let grads = try multiply.backward([x, w], output: Tensor(shape: x.shape, scalars: product), outputGradient: g)
        var gw = [Double](repeating: 0, count: w.count)
        for i in 0..<x.count { gw[i / (hw * c) * c + i % c] += Double(g.scalars[i] * x.scalars[i]) }
        expectClose(
            grads[0], Tensor(shape: x.shape, scalars: (0..<x.count).map { g.scalars[$0] * w.scalars[$0 / (hw * c) * c + $0 % c] }), tol: 0,
            "d map")
        expectClose(grads[1], Tensor(shape: w.shape, scalars: gw.map(Float.init)), tol: 1e-5, "d weights")

        // Written in place only over a tensor nobody else holds: the caller's copy stays
        // (`original` is a separate buffer: a copy of `x` would share x's).
        let original = x.scalars.map { $0 }
        var handed = [x, w]
        let inPlace = try multiply.forward(consuming: &handed)
        #expect(handed.isEmpty)
        #expect(x.scalars == original && inPlace.scalars == product)

        // A weighted Add over three inputs, in place.
        let (y, z) = (rng.tensor(x.shape), rng.tensor(x.shape))
        let add = Add(name: "add", coefficients: [1, -0.5, 2])
        var taken = [x, y, z]
        let sum = try add.forward(consuming: &taken)
        #expect(x.scalars == original)
        var weighted = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let (a, b, d): (Float, Float, Float) = (x.scalars[i], y.scalars[i], z.scalars[i])
            weighted[i] = a + b * -0.5 + d * 2
        }
        #expect(sum.scalars == weighted)

        // The global average in bands, against a Double sum.
        let gap = GlobalAveragePooling2D(name: "gap", keepDims: false)
        var mean = [Double](repeating: 0, count: 2 * c)
        for i in 0..<x.count { mean[i / (hw * c) * c + i % c] += Double(x.scalars[i]) / Double(hw) }
        expectClose(try gap.forward([x]), Tensor(shape: [2, c], scalars: mean.map(Float.init)), tol: 1e-5, "average")

        // Concatenation and its backward: slices of rows.
        let concat = Concatenate(name: "cat")
        let thin = rng.tensor([2, 24, 20, 5])
        let joined = try concat.forward([x, thin])
        #expect(joined.shape == [2, 24, 20, 101])
        for r in [0, 17, 2 * hw - 1] {
            #expect(Array(joined.scalars[(r * 101)..<(r * 101 + 96)]) == Array(x.scalars[(r * 96)..<(r * 96 + 96)]))
            #expect(Array(joined.scalars[(r * 101 + 96)..<(r * 101 + 101)]) == Array(thin.scalars[(r * 5)..<(r * 5 + 5)]))
        }
        let split = try concat.backward([x, thin], output: joined, outputGradient: joined)
        #expect(split[0].scalars == x.scalars && split[1].scalars == thin.scalars)

        // Empty maps (no channels, or no samples) give empty results, not a trap.
        for shape in [[2, 3, 3, 0], [0, 3, 3, 4]] {
            let e = Tensor(zeros: shape)
            let ew = Tensor(zeros: [shape[0], 1, 1, shape[3]])
            #expect(try multiply.forward([e, ew]).shape == shape)
            #expect(try multiply.backward([e, ew], output: e, outputGradient: e).map(\.shape) == [shape, ew.shape])
            #expect(try add.forward([e, e, e]).shape == shape)
            #expect(try concat.forward([e, e]).count == 0)
            #expect(
                try gap.backward([e], output: Tensor(zeros: [shape[0], shape[3]]), outputGradient: Tensor(zeros: [shape[0], shape[3]]))[0]
                    .shape == shape)
        }
    }
}
