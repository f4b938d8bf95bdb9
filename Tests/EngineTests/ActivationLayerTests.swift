import Foundation
import Testing

@testable import Engine

@Suite struct ActivationTests {
    static let xs: [Float] = [-7, -2, -1, -0.5, 0, 0.25, 0.5, 1, 1.5, 3, 6, 7]

    struct ReLUCase: CustomTestStringConvertible, Sendable {
        let maxValue: Float?
        let slope: Float
        let threshold: Float
        let values: [Float]
        let gradients: [Float]
        var testDescription: String { "max \(String(describing: maxValue)) slope \(slope) threshold \(threshold)" }
    }

    /// Values and gradients produced by TensorFlow 2.21 / Keras 3.15
    /// (`keras.activations.relu` under `tf.GradientTape`) at `xs` — kinks
    /// included: x = 0, x = threshold, x = max_value.
    static let reluCases: [ReLUCase] = [
        ReLUCase(
            maxValue: nil, slope: 0, threshold: 0,
            values: [0, 0, 0, 0, 0, 0.25, 0.5, 1, 1.5, 3, 6, 7],
            gradients: [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]),
        ReLUCase(
            maxValue: nil, slope: 0.1, threshold: 0,
            values: [-0.7, -0.2, -0.1, -0.05, 0, 0.25, 0.5, 1, 1.5, 3, 6, 7],
            gradients: [0.1, 0.1, 0.1, 0.1, 0.1, 1, 1, 1, 1, 1, 1, 1]),
        ReLUCase(
            maxValue: 6, slope: 0, threshold: 0,
            values: [0, 0, 0, 0, 0, 0.25, 0.5, 1, 1.5, 3, 6, 6],
            gradients: [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]),
        ReLUCase(
            maxValue: 6, slope: 0.1, threshold: 0,
            values: [-0.7, -0.2, -0.1, -0.05, 0, 0.25, 0.5, 1, 1.5, 3, 6, 6],
            gradients: [0.1, 0.1, 0.1, 0.1, 0, 1, 1, 1, 1, 1, 0, 0]),
        ReLUCase(
            maxValue: nil, slope: 0, threshold: 1,
            values: [0, 0, 0, 0, 0, 0, 0, 0, 1.5, 3, 6, 7],
            gradients: [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]),
        ReLUCase(
            maxValue: 6, slope: 0.1, threshold: 1,
            values: [-0.8, -0.3, -0.2, -0.15, -0.1, -0.075, -0.05, 0, 1.5, 3, 6, 6],
            gradients: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 1, 1, 1, 0]),
        ReLUCase(
            maxValue: nil, slope: 0, threshold: -1,
            values: [0, 0, 0, -0.5, 0, 0.25, 0.5, 1, 1.5, 3, 6, 7],
            gradients: [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
        ReLUCase(
            maxValue: 4, slope: 0, threshold: -1,
            values: [0, 0, 0, 0, 0, 0.25, 0.5, 1, 1.5, 3, 4, 4],
            gradients: [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0]),
        ReLUCase(
            maxValue: 4, slope: 0, threshold: 0,
            values: [0, 0, 0, 0, 0, 0.25, 0.5, 1, 1.5, 3, 4, 4],
            gradients: [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0]),
        ReLUCase(
            maxValue: nil, slope: 0.2, threshold: 0.5,
            values: [-1.5, -0.5, -0.3, -0.2, -0.1, -0.05, 0, 1, 1.5, 3, 6, 7],
            gradients: [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0, 1, 1, 1, 1, 1]),
        ReLUCase(
            maxValue: nil, slope: 1.5, threshold: 0,
            values: [-10.5, -3, -1.5, -0.75, 0, 0.25, 0.5, 1, 1.5, 3, 6, 7],
            gradients: [1.5, 1.5, 1.5, 1.5, 1.5, 1, 1, 1, 1, 1, 1, 1]),
    ]

    @Test(arguments: reluCases) func reluMatchesKerasIncludingKinks(_ c: ReLUCase) throws {
        let layer = Activation(
            name: "act",
            function: .relu(
                maxValue: c.maxValue, negativeSlope: c.slope,
                threshold: c.threshold), kind: "ReLU")
        let x = Tensor(shape: [2, 6], scalars: Self.xs)
        let y = try layer.forward([x])
        let g = try layer.backward([x], output: y, outputGradient: Tensor(repeating: 1, shape: [2, 6]))[0]
        for i in 0..<Self.xs.count {
            #expect(abs(y.scalars[i] - c.values[i]) <= 1e-6, "relu(\(Self.xs[i])) = \(y.scalars[i]), Keras \(c.values[i])")
            #expect(abs(g.scalars[i] - c.gradients[i]) <= 1e-6, "relu'(\(Self.xs[i])) = \(g.scalars[i]), TF \(c.gradients[i])")
        }
    }

    /// Away from the kinks ReLU is linear, so central differences are exact up
    /// to rounding: tolerance 1e-3 with ε = 1e-3 and inputs ≥ 0.05 from any kink.
    @Test(arguments: reluCases) func reluBackwardMatchesFiniteDifferences(_ c: ReLUCase) throws {
        let layer = Activation(
            name: "act",
            function: .relu(
                maxValue: c.maxValue, negativeSlope: c.slope,
                threshold: c.threshold))
        var rng = SplitMix64(seed: 41)
        let kinks: [Float] = [0, c.threshold] + (c.maxValue.map { [$0] } ?? [])
        var values = [Float]()
        while values.count < 24 {
            let v = rng.uniform(-8, 8)
            if kinks.allSatisfy({ abs(v - $0) > 0.05 }) { values.append(v) }
        }
        try expectFiniteDifferences(layer, input: Tensor(shape: [2, 3, 4], scalars: values), eps: 1e-3, tol: 1e-3)
    }

    @Test func sigmoidAndTanhMatchTheirDefinitions() throws {
        var rng = SplitMix64(seed: 42)
        let x = rng.tensor([2, 3, 3, 4], -6, 6)
        let s = try Activation(name: "s", function: .sigmoid).forward([x])
        let t = try Activation(name: "t", function: .tanh).forward([x])
        expectClose(s, Tensor(shape: x.shape, scalars: x.scalars.map { 1 / (1 + Foundation.exp(-$0)) }), tol: 1e-5, "sigmoid")
        expectClose(t, Tensor(shape: x.shape, scalars: x.scalars.map { Foundation.tanh($0) }), tol: 1e-5, "tanh")
    }

    /// Smooth functions: central differences with ε = 1e-2 have truncation
    /// error O(ε²) ≈ 1e-4 here; tolerance 1e-3.
    @Test(arguments: [ActivationFunction.sigmoid, .tanh, .softmax, .linear])
    func smoothActivationsMatchFiniteDifferences(_ f: ActivationFunction) throws {
        var rng = SplitMix64(seed: 43)
        try expectFiniteDifferences(Activation(name: "a", function: f), input: rng.tensor([2, 2, 2, 5], -2, 2))
        try expectFiniteDifferences(Activation(name: "a", function: f), input: rng.tensor([3, 7], -2, 2))
    }

    @Test func softmaxIsOverTheLastAxis() throws {
        var rng = SplitMix64(seed: 44)
        let x = rng.tensor([2, 3, 4], -5, 5)
        let y = try Activation(name: "sm", function: .softmax).forward([x])
        var want = [Float]()
        for r in 0..<6 {
            let row = x.scalars[(r * 4)..<(r * 4 + 4)].map(Double.init)
            let m = row.max()!
            let e = row.map { Foundation.exp($0 - m) }
            let s = e.reduce(0, +)
            want += e.map { Float($0 / s) }
        }
        expectClose(y, Tensor(shape: x.shape, scalars: want), tol: 1e-5, "softmax")
        // Large logits must not overflow.
        let big = try Activation(name: "sm", function: .softmax).forward([Tensor(shape: [1, 2], scalars: [1000, 0])])
        #expect(big.scalars == [1, 0])
    }

    @Test func batchOfThreeEqualsSingleRuns() throws {
        for f in [ActivationFunction.softmax, .sigmoid, .relu(maxValue: 6, negativeSlope: 0.1, threshold: 0.5)] {
            try expectBatchConsistent(Activation(name: "a", function: f), sampleShapes: [[2, 3, 4]])
        }
    }

    @Test func kindsShapesAndErrors() throws {
        let a = Activation(name: "r", function: .relu(), kind: "ReLU")
        #expect(a.kind == "ReLU")
        #expect(Activation(name: "x", function: .tanh).kind == "Activation")
        #expect(a.parameterCount == 0)
        #expect(try a.outputShape(for: [[-1, -1, 8]]) == [-1, -1, 8])
        expectShapeMismatch("r") { _ = try a.forward([]) }
        expectShapeMismatch("r") {
            _ = try a.backward([Tensor(zeros: [1, 4])], output: Tensor(zeros: [1, 4]), outputGradient: Tensor(zeros: [1, 3]))
        }
    }
}
