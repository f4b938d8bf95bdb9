/// Keras `Multiply`: the element-wise product of two or more inputs. Inputs of the
/// same rank may have size 1 where another has more (squeeze-and-excite multiplies a
/// [n, h, w, c] map by [n, 1, 1, c] weights), as Keras broadcasts them.
/// Backward: each input's gradient is the output gradient times the product of the
/// other inputs, summed over the positions it was broadcast to.
public final class Multiply: Layer {
    public let name: String
    public var kind: String { "Multiply" }

    public init(name: String) {
        self.name = name
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        guard inputShapes.count >= 2 else { throw mismatch("Multiply takes at least 2 inputs, got \(inputShapes.count)") }
        guard inputShapes.allSatisfy({ $0.count == inputShapes[0].count }) else {
            throw mismatch("inputs differ in rank: \(inputShapes)")
        }
        var out = inputShapes[0]
        for s in inputShapes.dropFirst() {
            for i in 0..<s.count {
                if out[i] == 1 || out[i] == -1 && s[i] != 1 { out[i] = s[i] }
                else if s[i] != 1 && s[i] != -1 && s[i] != out[i] { throw mismatch("inputs cannot broadcast: \(inputShapes)") }
            }
        }
        return out
    }

    /// The broadcast output shape of concrete inputs.
    private func broadcastShape(_ inputs: [Tensor]) throws -> [Int] {
        guard inputs.count >= 2 else { throw mismatch("Multiply takes at least 2 inputs, got \(inputs.count)") }
        let rank = inputs[0].rank
        guard inputs.allSatisfy({ $0.rank == rank }) else { throw mismatch("inputs differ in rank: \(inputs.map(\.shape))") }
        var out = inputs[0].shape
        for t in inputs.dropFirst() {
            for i in 0..<rank where t.shape[i] != out[i] {
                if out[i] == 1 { out[i] = t.shape[i] } else if t.shape[i] != 1 {
                    throw mismatch("inputs cannot broadcast: \(inputs.map(\.shape))")
                }
            }
        }
        return out
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let out = try broadcastShape(inputs)
        let count = out.reduce(1, *)
        var y = [Float](repeating: 1, count: count)
        for t in inputs {
            let index = broadcastSourceIndex(of: t.shape, in: out)
            for p in 0..<count { y[p] *= t.scalars[index[p]] }
        }
        return Tensor(shape: out, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let out = try broadcastShape(inputs)
        guard outputGradient.shape == out else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output \(out)")
        }
        let count = out.reduce(1, *)
        let indices = inputs.map { broadcastSourceIndex(of: $0.shape, in: out) }
        return inputs.indices.map { j in
            var g = [Float](repeating: 0, count: inputs[j].count)
            for p in 0..<count {
                var others = outputGradient.scalars[p]
                for k in inputs.indices where k != j { others *= inputs[k].scalars[indices[k][p]] }
                g[indices[j][p]] += others
            }
            return Tensor(shape: inputs[j].shape, scalars: g)
        }
    }
}
