import Foundation
import Testing

@testable import Engine

@Suite struct BatchNormalizationTests {
    static func layer(center: Bool = true, scale: Bool = true, channels: Int = 5) -> BatchNormalization {
        var rng = SplitMix64(seed: 51)
        return BatchNormalization(
            name: "bn", gamma: scale ? rng.tensor([channels], 0.5, 2) : nil,
            beta: center ? rng.tensor([channels]) : nil,
            movingMean: rng.tensor([channels]), movingVariance: rng.tensor([channels], 0.1, 3),
            epsilon: 1e-3)
    }

    @Test(arguments: [(true, true), (false, true), (true, false), (false, false)])
    func forwardMatchesTheDefinition(_ flags: (Bool, Bool)) throws {
        let bn = Self.layer(center: flags.0, scale: flags.1)
        var rng = SplitMix64(seed: 52)
        let x = rng.tensor([2, 3, 2, 5], -3, 3)
        var want = x
        for i in 0..<x.count {
            let c = i % 5
            let norm =
                (Double(x.scalars[i]) - Double(bn.movingMean.scalars[c]))
                / (Double(bn.movingVariance.scalars[c]) + 1e-3).squareRoot()
            want.scalars[i] = Float(norm * Double(bn.gamma?.scalars[c] ?? 1) + Double(bn.beta?.scalars[c] ?? 0))
        }
        expectClose(try bn.forward([x]), want, "bn")
        #expect(bn.parameterCount == 10 + (flags.0 ? 5 : 0) + (flags.1 ? 5 : 0))
    }

    @Test func backwardIsTheAdjoint() throws {
        try expectAdjoint(Self.layer(), inputShapes: [[2, 3, 2, 5]])
        try expectAdjoint(Self.layer(), inputShapes: [[4, 5]])
        try expectBatchConsistent(Self.layer(), sampleShapes: [[3, 2, 5]])
    }

    @Test func shapesAndErrors() throws {
        let bn = Self.layer()
        #expect(bn.kind == "BatchNormalization")
        #expect(try bn.outputShape(for: [[-1, -1, 5]]) == [-1, -1, 5])
        expectShapeMismatch("bn") { _ = try bn.outputShape(for: [[4, 4, 6]]) }
        expectShapeMismatch("bn") { _ = try bn.forward([Tensor(zeros: [1, 4, 4, 6])]) }
        let bad = BatchNormalization(
            name: "bad", gamma: Tensor(zeros: [4]), beta: nil, movingMean: Tensor(zeros: [5]),
            movingVariance: Tensor(zeros: [5]), epsilon: 1e-3)
        expectShapeMismatch("bad") { _ = try bad.forward([Tensor(zeros: [1, 5])]) }
    }
}

@Suite struct GlobalAveragePooling2DTests {
    @Test(arguments: [false, true]) func forwardBackwardAndShapes(_ keep: Bool) throws {
        let gap = GlobalAveragePooling2D(name: "gap", keepDims: keep)
        var rng = SplitMix64(seed: 61)
        let x = rng.tensor([2, 3, 4, 5])
        let y = try gap.forward([x])
        var want = [Float]()
        for b in 0..<2 {
            for c in 0..<5 {
                var s = 0.0
                for p in 0..<12 { s += Double(x.scalars[(b * 12 + p) * 5 + c]) }
                want.append(Float(s / 12))
            }
        }
        expectClose(y, Tensor(shape: keep ? [2, 1, 1, 5] : [2, 5], scalars: want), "gap")
        #expect(try gap.outputShape(for: [[-1, -1, 5]]) == (keep ? [1, 1, 5] : [5]))
        try expectAdjoint(gap, inputShapes: [[2, 3, 4, 5]])
        try expectBatchConsistent(gap, sampleShapes: [[3, 4, 5]])
        #expect(gap.kind == "GlobalAveragePooling2D")
        expectShapeMismatch("gap") { _ = try gap.forward([Tensor(zeros: [2, 5])]) }
    }
}

@Suite struct ReshapeAndPaddingLayerTests {
    @Test func flattenKeepsNHWCOrder() throws {
        let f = Flatten(name: "flat")
        let x = Tensor(shape: [2, 2, 2, 2], scalars: (0..<16).map(Float.init))
        let y = try f.forward([x])
        #expect(y.shape == [2, 8])
        #expect(y.scalars == x.scalars)  // NHWC row-major is Keras' channels_last flatten order
        #expect(try f.outputShape(for: [[2, 3, 4]]) == [24])
        #expect(try f.outputShape(for: [[-1, 3, 4]]) == [-1])
        try expectAdjoint(f, inputShapes: [[2, 3, 2, 2]])
        try expectBatchConsistent(f, sampleShapes: [[3, 2, 2]])
        #expect(f.kind == "Flatten")
    }

    @Test func zeroPaddingPlacesTheMapAndCropsTheGradient() throws {
        let p = ZeroPadding2D(name: "pad", top: 1, bottom: 2, left: 0, right: 1)
        let x = Tensor(shape: [1, 2, 2, 1], scalars: [1, 2, 3, 4])
        let y = try p.forward([x])
        #expect(y.shape == [1, 5, 3, 1])
        #expect(
            y.scalars == [
                0, 0, 0,
                1, 2, 0,
                3, 4, 0,
                0, 0, 0,
                0, 0, 0,
            ])
        let g = try p.backward([x], output: y, outputGradient: Tensor(shape: [1, 5, 3, 1], scalars: (0..<15).map(Float.init)))[0]
        #expect(g.scalars == [3, 4, 6, 7])
        #expect(try p.outputShape(for: [[-1, 4, 3]]) == [-1, 5, 3])
        try expectAdjoint(p, inputShapes: [[2, 3, 4, 2]])
        try expectBatchConsistent(p, sampleShapes: [[3, 4, 2]])
        #expect(p.kind == "ZeroPadding2D")
        expectShapeMismatch("neg") { _ = try ZeroPadding2D(name: "neg", top: -1, bottom: 0, left: 0, right: 0).forward([x]) }
        expectShapeMismatch("pad") { _ = try p.forward([Tensor(zeros: [4, 2])]) }
    }

    @Test func addSumsAndSharesTheGradient() throws {
        let add = Add(name: "add")
        var rng = SplitMix64(seed: 71)
        let a = rng.tensor([2, 3, 3, 2])
        let b = rng.tensor([2, 3, 3, 2])
        let c = rng.tensor([2, 3, 3, 2])
        let y = try add.forward([a, b, c])
        for i in 0..<y.count { #expect(abs(y.scalars[i] - (a.scalars[i] + b.scalars[i] + c.scalars[i])) <= 1e-6) }
        try expectAdjoint(add, inputShapes: [[2, 3, 3, 2], [2, 3, 3, 2]])
        try expectAdjoint(add, inputShapes: [[2, 4], [2, 4], [2, 4]])
        try expectBatchConsistent(add, sampleShapes: [[3, 3, 2], [3, 3, 2]])
        #expect(try add.outputShape(for: [[-1, 4, 2], [5, -1, 2]]) == [5, 4, 2])
        expectShapeMismatch("add") { _ = try add.forward([a]) }
        expectShapeMismatch("add") { _ = try add.forward([a, Tensor(zeros: [2, 3, 3, 3])]) }
        expectShapeMismatch("add") { _ = try add.outputShape(for: [[4, 4, 2], [4, 4, 3]]) }
        #expect(add.kind == "Add")
    }

    @Test func identityPassesThrough() throws {
        let id = Identity(name: "drop", kind: "Dropout")
        var rng = SplitMix64(seed: 81)
        let x = rng.tensor([2, 3])
        #expect(try id.forward([x]) == x)
        #expect(try id.backward([x], output: x, outputGradient: x)[0] == x)
        #expect(id.kind == "Dropout")
        #expect(try id.outputShape(for: [[-1, 3]]) == [-1, 3])
        expectShapeMismatch("drop") { _ = try id.forward([x, x]) }
    }
}
