import Testing

@testable import Engine

@Suite struct Conv2DTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let input: [Int]  // [n, h, w, cin]
        let kernel: [Int]  // [kh, kw, cin, cout]
        let strides: [Int]
        let padding: Padding
        let dilation: [Int]
        let bias: Bool
        var testDescription: String {
            "in \(input) k \(kernel) s \(strides) \(padding) d \(dilation)\(bias ? "" : " no-bias")"
        }
    }

    static let cases: [Case] = [
        Case(input: [2, 5, 6, 3], kernel: [3, 3, 3, 4], strides: [1, 1], padding: .same, dilation: [1, 1], bias: true),
        // stride 2 'same': odd size pads (1, 1), even size pads (0, 1) — TF's asymmetric split
        Case(input: [1, 7, 7, 2], kernel: [3, 3, 2, 5], strides: [2, 2], padding: .same, dilation: [1, 1], bias: true),
        Case(input: [2, 6, 8, 2], kernel: [3, 3, 2, 3], strides: [2, 2], padding: .same, dilation: [1, 1], bias: true),
        // 5x5 stride 2 on an even size: total padding 3 = 1 before + 2 after
        Case(input: [1, 8, 8, 3], kernel: [5, 5, 3, 2], strides: [2, 2], padding: .same, dilation: [1, 1], bias: false),
        Case(input: [2, 7, 8, 3], kernel: [3, 3, 3, 4], strides: [2, 2], padding: .valid, dilation: [1, 1], bias: true),
        Case(input: [1, 7, 7, 2], kernel: [3, 3, 2, 3], strides: [1, 1], padding: .same, dilation: [2, 2], bias: true),
        Case(input: [1, 9, 8, 2], kernel: [3, 3, 2, 3], strides: [1, 1], padding: .valid, dilation: [2, 2], bias: false),
        Case(input: [2, 4, 5, 6], kernel: [1, 1, 6, 4], strides: [1, 1], padding: .valid, dilation: [1, 1], bias: false),
        Case(input: [1, 5, 5, 4], kernel: [1, 1, 4, 3], strides: [2, 2], padding: .same, dilation: [1, 1], bias: true),
        Case(input: [1, 6, 7, 3], kernel: [2, 3, 3, 4], strides: [1, 2], padding: .same, dilation: [1, 1], bias: true),
        // a channel count oneDNN blocks (16) next to one it has to pad (17 → 32)
        Case(input: [1, 5, 5, 16], kernel: [3, 3, 16, 17], strides: [1, 1], padding: .same, dilation: [1, 1], bias: true),
    ]

    static func layer(_ c: Case, seed: UInt64 = 1) -> Conv2D {
        var rng = SplitMix64(seed: seed)
        return Conv2D(
            name: "conv", kernel: rng.tensor(c.kernel), bias: c.bias ? rng.tensor([c.kernel[3]]) : nil,
            strides: c.strides, padding: c.padding, dilation: c.dilation)
    }

    @Test(arguments: cases) func forwardMatchesDirectConvolution(_ c: Case) throws {
        let conv = Self.layer(c)
        var rng = SplitMix64(seed: 2)
        let x = rng.tensor(c.input)
        let got = try conv.forward([x])
        let want = referenceConv2D(
            x, kernel: conv.kernel, bias: conv.bias, strides: c.strides,
            padding: c.padding, dilation: c.dilation)
        expectClose(got, want, "conv")
        #expect(try conv.outputShape(for: [Array(c.input.dropFirst())]) == Array(want.shape.dropFirst()))
    }

    @Test(arguments: cases) func backwardIsTheAdjoint(_ c: Case) throws {
        try expectAdjoint(Self.layer(c), inputShapes: [c.input])
    }

    @Test(arguments: [cases[1], cases[2], cases[5]]) func batchOfThreeEqualsSingleRuns(_ c: Case) throws {
        try expectBatchConsistent(Self.layer(c), sampleShapes: [Array(c.input.dropFirst())])
    }

    @Test func shapesAndErrors() throws {
        let conv = Self.layer(Self.cases[1])  // 3x3x2→5, stride 2, same
        #expect(try conv.outputShape(for: [[-1, -1, 2]]) == [-1, -1, 5])
        #expect(try conv.outputShape(for: [[7, -1, 2]]) == [4, -1, 5])
        #expect(conv.kind == "Conv2D")
        #expect(conv.parameterCount == 3 * 3 * 2 * 5 + 5)
        expectShapeMismatch("conv") { _ = try conv.outputShape(for: [[7, 7, 3]]) }
        expectShapeMismatch("conv") { _ = try conv.forward([Tensor(zeros: [1, 7, 7, 3])]) }
        expectShapeMismatch("conv") { _ = try conv.forward([Tensor(zeros: [7, 7, 2])]) }
        expectShapeMismatch("conv") { _ = try conv.forward([]) }
        expectShapeMismatch("conv") {
            _ = try conv.backward(
                [Tensor(zeros: [1, 7, 7, 2])], output: Tensor(zeros: [1, 4, 4, 5]),
                outputGradient: Tensor(zeros: [1, 3, 4, 5]))
        }
        // A 'valid' window larger than the input.
        let big = Conv2D(
            name: "big", kernel: Tensor(zeros: [5, 5, 1, 1]), bias: nil, strides: [1, 1],
            padding: .valid, dilation: [1, 1])
        expectShapeMismatch("big") { _ = try big.outputShape(for: [[4, 9, 1]]) }
        expectShapeMismatch("big") { _ = try big.forward([Tensor(zeros: [1, 4, 9, 1])]) }
        // Malformed weights are reported, not crashed on.
        let bad = Conv2D(
            name: "bad", kernel: Tensor(zeros: [3, 3, 2]), bias: nil, strides: [1, 1],
            padding: .same, dilation: [1, 1])
        expectShapeMismatch("bad") { _ = try bad.outputShape(for: [[5, 5, 2]]) }
        expectShapeMismatch("bad") { _ = try bad.forward([Tensor(zeros: [1, 5, 5, 2])]) }
        let badBias = Conv2D(
            name: "badBias", kernel: Tensor(zeros: [3, 3, 2, 4]), bias: Tensor(zeros: [3]),
            strides: [1, 1], padding: .same, dilation: [1, 1])
        expectShapeMismatch("badBias") { _ = try badBias.forward([Tensor(zeros: [1, 5, 5, 2])]) }
        let badStride = Conv2D(
            name: "badStride", kernel: Tensor(zeros: [3, 3, 2, 4]), bias: nil,
            strides: [0, 1], padding: .same, dilation: [1, 1])
        expectShapeMismatch("badStride") { _ = try badStride.forward([Tensor(zeros: [1, 5, 5, 2])]) }
    }

    @Test func emptyBatch() throws {
        let conv = Self.layer(Self.cases[0])
        let y = try conv.forward([Tensor(zeros: [0, 5, 6, 3])])
        #expect(y.shape == [0, 5, 6, 4])
    }

    /// Plans are cached per input shape; concurrent runs of one layer on
    /// several threads (different batch sizes, shared cache) agree with serial runs.
    @Test func concurrentRunsAgreeWithSerialOnes() async throws {
        let conv = Self.layer(Self.cases[2])
        var rng = SplitMix64(seed: 9)
        let inputs = (1...6).map { rng.tensor([($0 % 3) + 1, 6, 8, 2]) }
        let serial = try inputs.map { try conv.forward([$0]) }
        let serialBack = try zip(inputs, serial).map {
            try conv.backward([$0.0], output: $0.1, outputGradient: $0.1)[0]
        }
        let results = try await withThrowingTaskGroup(of: (Int, Tensor, Tensor).self) { group in
            for (i, x) in inputs.enumerated() {
                group.addTask {
                    let y = try conv.forward([x])
                    let g = try conv.backward([x], output: y, outputGradient: y)[0]
                    return (i, y, g)
                }
            }
            var all = [(Int, Tensor, Tensor)]()
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == inputs.count)
        for (i, y, g) in results {
            #expect(y == serial[i])
            #expect(g == serialBack[i])
        }
    }
}

@Suite struct DepthwiseConv2DTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let input: [Int]  // [n, h, w, cin]
        let kernel: [Int]  // [kh, kw, cin, multiplier]
        let strides: [Int]
        let padding: Padding
        let dilation: [Int]
        let bias: Bool
        var testDescription: String {
            "in \(input) k \(kernel) s \(strides) \(padding) d \(dilation)\(bias ? "" : " no-bias")"
        }
    }

    static let cases: [Case] = [
        Case(input: [2, 5, 6, 3], kernel: [3, 3, 3, 1], strides: [1, 1], padding: .same, dilation: [1, 1], bias: true),
        Case(input: [1, 6, 6, 3], kernel: [3, 3, 3, 2], strides: [2, 2], padding: .same, dilation: [1, 1], bias: true),
        Case(input: [1, 7, 7, 2], kernel: [3, 3, 2, 3], strides: [2, 2], padding: .same, dilation: [1, 1], bias: false),
        Case(input: [1, 8, 7, 4], kernel: [5, 5, 4, 1], strides: [2, 2], padding: .same, dilation: [1, 1], bias: true),
        Case(input: [2, 7, 7, 3], kernel: [3, 3, 3, 1], strides: [1, 1], padding: .same, dilation: [2, 2], bias: true),
        Case(input: [1, 7, 8, 2], kernel: [3, 3, 2, 2], strides: [1, 1], padding: .valid, dilation: [1, 1], bias: true),
        Case(input: [1, 4, 4, 16], kernel: [3, 3, 16, 1], strides: [1, 1], padding: .same, dilation: [1, 1], bias: true),
    ]

    static func layer(_ c: Case, seed: UInt64 = 3) -> DepthwiseConv2D {
        var rng = SplitMix64(seed: seed)
        return DepthwiseConv2D(
            name: "dw", kernel: rng.tensor(c.kernel),
            bias: c.bias ? rng.tensor([c.kernel[2] * c.kernel[3]]) : nil,
            strides: c.strides, padding: c.padding, dilation: c.dilation)
    }

    @Test(arguments: cases) func forwardMatchesDirectDepthwise(_ c: Case) throws {
        let dw = Self.layer(c)
        var rng = SplitMix64(seed: 4)
        let x = rng.tensor(c.input)
        let got = try dw.forward([x])
        let want = referenceDepthwise(
            x, kernel: dw.kernel, bias: dw.bias, strides: c.strides,
            padding: c.padding, dilation: c.dilation)
        expectClose(got, want, "depthwise")
        #expect(try dw.outputShape(for: [Array(c.input.dropFirst())]) == Array(want.shape.dropFirst()))
    }

    @Test(arguments: cases) func backwardIsTheAdjoint(_ c: Case) throws {
        try expectAdjoint(Self.layer(c), inputShapes: [c.input])
    }

    @Test func batchOfThreeEqualsSingleRuns() throws {
        try expectBatchConsistent(Self.layer(Self.cases[1]), sampleShapes: [[6, 6, 3]])
    }

    @Test func shapesAndErrors() throws {
        let dw = Self.layer(Self.cases[1])  // cin 3, multiplier 2
        #expect(dw.kind == "DepthwiseConv2D")
        #expect(dw.parameterCount == 3 * 3 * 3 * 2 + 6)
        #expect(try dw.outputShape(for: [[-1, 9, 3]]) == [-1, 5, 6])
        expectShapeMismatch("dw") { _ = try dw.forward([Tensor(zeros: [1, 6, 6, 2])]) }
        let bad = DepthwiseConv2D(
            name: "bad", kernel: Tensor(zeros: [3, 3, 3, 2]), bias: Tensor(zeros: [3]),
            strides: [1, 1], padding: .same, dilation: [1, 1])
        expectShapeMismatch("bad") { _ = try bad.outputShape(for: [[5, 5, 3]]) }
    }
}
