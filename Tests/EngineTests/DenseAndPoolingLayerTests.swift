import Testing

@testable import Engine

@Suite struct DenseTests {
    static func layer(_ inputs: Int, _ outputs: Int, bias: Bool = true, seed: UInt64 = 21) -> Dense {
        var rng = SplitMix64(seed: seed)
        return Dense(name: "fc", kernel: rng.tensor([inputs, outputs]), bias: bias ? rng.tensor([outputs]) : nil)
    }

    @Test(arguments: [[3, 5], [1, 7], [2, 3, 3, 5], [2, 4, 5]])
    func forwardMatchesReference(_ shape: [Int]) throws {
        let fc = Self.layer(shape.last!, 4)
        var rng = SplitMix64(seed: 22)
        let x = rng.tensor(shape)
        let got = try fc.forward([x])
        expectClose(got, referenceDense(x, kernel: fc.kernel, bias: fc.bias), "dense")
        #expect(got.shape == Array(shape.dropLast()) + [4])
        #expect(try fc.outputShape(for: [Array(shape.dropFirst())]) == Array(shape.dropFirst().dropLast()) + [4])
    }

    @Test func noBias() throws {
        let fc = Self.layer(6, 3, bias: false)
        var rng = SplitMix64(seed: 23)
        let x = rng.tensor([2, 6])
        expectClose(try fc.forward([x]), referenceDense(x, kernel: fc.kernel, bias: nil), "dense")
        #expect(fc.parameterCount == 18)
    }

    @Test(arguments: [[3, 5], [2, 3, 3, 5]])
    func backwardIsTheAdjoint(_ shape: [Int]) throws {
        try expectAdjoint(Self.layer(5, 4), inputShapes: [shape])
        try expectAdjoint(Self.layer(5, 4, bias: false), inputShapes: [shape])
    }

    @Test func batchOfThreeEqualsSingleRuns() throws {
        try expectBatchConsistent(Self.layer(5, 4), sampleShapes: [[5]])
        try expectBatchConsistent(Self.layer(5, 4), sampleShapes: [[2, 3, 5]])
    }

    @Test func shapesAndErrors() throws {
        let fc = Self.layer(5, 4)
        #expect(fc.kind == "Dense")
        #expect(fc.parameterCount == 24)
        #expect(try fc.outputShape(for: [[-1, -1, 5]]) == [-1, -1, 4])
        expectShapeMismatch("fc") { _ = try fc.outputShape(for: [[6]]) }
        expectShapeMismatch("fc") { _ = try fc.forward([Tensor(zeros: [2, 6])]) }
        expectShapeMismatch("fc") {
            _ = try fc.backward([Tensor(zeros: [2, 5])], output: Tensor(zeros: [2, 4]), outputGradient: Tensor(zeros: [2, 3]))
        }
        let bad = Dense(name: "bad", kernel: Tensor(zeros: [5, 4]), bias: Tensor(zeros: [5]))
        expectShapeMismatch("bad") { _ = try bad.forward([Tensor(zeros: [1, 5])]) }
    }
}

@Suite struct PoolingTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let input: [Int]
        let pool: [Int]
        let strides: [Int]
        let padding: Padding
        var testDescription: String { "in \(input) pool \(pool) s \(strides) \(padding)" }
    }

    static let cases: [Case] = [
        Case(input: [2, 6, 6, 3], pool: [2, 2], strides: [2, 2], padding: .valid),
        Case(input: [1, 7, 7, 2], pool: [2, 2], strides: [2, 2], padding: .valid),
        Case(input: [1, 7, 7, 2], pool: [2, 2], strides: [2, 2], padding: .same),  // pads 0 before, 1 after
        Case(input: [2, 7, 8, 3], pool: [3, 3], strides: [2, 2], padding: .same),
        Case(input: [1, 8, 8, 2], pool: [3, 3], strides: [2, 2], padding: .same),
        Case(input: [1, 5, 6, 4], pool: [3, 3], strides: [1, 1], padding: .same),  // pads both sides
        Case(input: [1, 6, 7, 2], pool: [2, 3], strides: [1, 2], padding: .same),
        Case(input: [1, 9, 9, 17], pool: [3, 3], strides: [2, 2], padding: .valid),
    ]

    /// Inputs with distinct, well separated values (a shuffled ramp), so that
    /// maxima are unique and small perturbations do not move them.
    static func separated(_ shape: [Int], seed: UInt64) -> Tensor {
        let n = shape.reduce(1, *)
        var values = (0..<n).map { Float($0) * 0.05 - Float(n) * 0.025 }
        var rng = SplitMix64(seed: seed)
        for i in stride(from: n - 1, to: 0, by: -1) { values.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return Tensor(shape: shape, scalars: values)
    }

    @Test(arguments: cases) func maxForwardMatchesReference(_ c: Case) throws {
        let p = MaxPooling2D(name: "mp", poolSize: c.pool, strides: c.strides, padding: c.padding)
        var rng = SplitMix64(seed: 31)
        let x = rng.tensor(c.input, -3, -1)  // all negative: a padded zero must never win
        let got = try p.forward([x])
        expectClose(got, referencePool(x, max: true, pool: c.pool, strides: c.strides, padding: c.padding), "max")
        #expect(try p.outputShape(for: [Array(c.input.dropFirst())]) == Array(got.shape.dropFirst()))
    }

    @Test(arguments: cases) func averageForwardMatchesReference(_ c: Case) throws {
        let p = AveragePooling2D(name: "ap", poolSize: c.pool, strides: c.strides, padding: c.padding)
        var rng = SplitMix64(seed: 32)
        let x = rng.tensor(c.input, 1, 3)  // all positive: counting padded cells would show
        let got = try p.forward([x])
        expectClose(got, referencePool(x, max: false, pool: c.pool, strides: c.strides, padding: c.padding), "avg")
        #expect(try p.outputShape(for: [Array(c.input.dropFirst())]) == Array(got.shape.dropFirst()))
    }

    @Test(arguments: cases) func averageBackwardIsTheAdjoint(_ c: Case) throws {
        try expectAdjoint(
            AveragePooling2D(name: "ap", poolSize: c.pool, strides: c.strides, padding: c.padding),
            inputShapes: [c.input])
    }

    /// Max pooling is linear around a point with unique maxima: J·v is exactly
    /// the central difference (f(x+εv) − f(x−εv)) / 2ε there. Adjoint test on that J.
    @Test(arguments: cases) func maxBackwardIsTheAdjointOfTheLocalJacobian(_ c: Case) throws {
        let p = MaxPooling2D(name: "mp", poolSize: c.pool, strides: c.strides, padding: c.padding)
        let x = Self.separated(c.input, seed: 33)
        var rng = SplitMix64(seed: 34)
        let v = rng.tensor(c.input)
        let eps: Float = 1e-3  // |εv| ≤ 1e-3, well under the 0.05 gap between values
        var xp = x
        var xm = x
        for i in 0..<x.count {
            xp.scalars[i] += eps * v.scalars[i]
            xm.scalars[i] -= eps * v.scalars[i]
        }
        let jv = Tensor(
            shape: try p.forward([x]).shape,
            scalars: zip(try p.forward([xp]).scalars, try p.forward([xm]).scalars).map { ($0 - $1) / (2 * eps) })
        let out = try p.forward([x])
        let y = rng.tensor(out.shape)
        let g = try p.backward([x], output: out, outputGradient: y)[0]
        let lhs = dot(jv, y)
        let rhs = dot(v, g)
        #expect(abs(lhs - rhs) <= 2e-3 * norm(jv) * norm(y), "<Jv,y> \(lhs) vs <v,J^T y> \(rhs)")
        #expect(norm(jv) > 0)
    }

    /// Equal values in a window: TensorFlow routes the gradient to the first
    /// maximum in row-major window order, and so must we.
    @Test func maxGradientGoesToTheFirstOfTiedMaxima() throws {
        let p = MaxPooling2D(name: "mp", poolSize: [2, 2], strides: [2, 2], padding: .valid)
        let x = Tensor(
            shape: [1, 2, 4, 1],
            scalars: [
                1, 5, 2, 2,
                5, 5, 2, 1,
            ])
        let out = try p.forward([x])
        #expect(out.scalars == [5, 2])
        let g = try p.backward([x], output: out, outputGradient: Tensor(shape: [1, 1, 2, 1], scalars: [10, 20]))[0]
        #expect(
            g.scalars == [
                0, 10, 20, 0,
                0, 0, 0, 0,
            ])
    }

    @Test func batchOfThreeEqualsSingleRuns() throws {
        let c = Self.cases[3]
        try expectBatchConsistent(
            MaxPooling2D(name: "mp", poolSize: c.pool, strides: c.strides, padding: c.padding),
            sampleShapes: [Array(c.input.dropFirst())])
        try expectBatchConsistent(
            AveragePooling2D(name: "ap", poolSize: c.pool, strides: c.strides, padding: c.padding),
            sampleShapes: [Array(c.input.dropFirst())])
    }

    @Test func shapesAndErrors() throws {
        let p = MaxPooling2D(name: "mp", poolSize: [3, 3], strides: [2, 2], padding: .valid)
        #expect(p.kind == "MaxPooling2D")
        #expect(p.parameterCount == 0)
        #expect(try p.outputShape(for: [[-1, 9, 4]]) == [-1, 4, 4])
        expectShapeMismatch("mp") { _ = try p.outputShape(for: [[2, 9, 4]]) }
        expectShapeMismatch("mp") { _ = try p.forward([Tensor(zeros: [1, 2, 9, 4])]) }
        expectShapeMismatch("mp") { _ = try p.forward([Tensor(zeros: [9, 4])]) }
        let a = AveragePooling2D(name: "ap", poolSize: [2, 2], strides: [0, 2], padding: .same)
        #expect(a.kind == "AveragePooling2D")
        expectShapeMismatch("ap") { _ = try a.outputShape(for: [[4, 4, 1]]) }
        expectShapeMismatch("ap") { _ = try a.forward([Tensor(zeros: [1, 4, 4, 1])]) }
    }
}
