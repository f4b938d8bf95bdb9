/// Keras `Maximum` / `Minimum`: the element-wise largest (smallest) of two or
/// more inputs of one shape. Keras folds `ops.maximum` over the inputs in order,
/// and TensorFlow's gradient of `maximum(x, y)` goes to x where x ≥ y, so each
/// element's gradient goes to the first input holding the extreme value.
public final class Extremum: Layer {
    public let name: String
    public let largest: Bool
    public var kind: String { largest ? "Maximum" : "Minimum" }

    public init(name: String, largest: Bool) {
        self.name = name
        self.largest = largest
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        guard inputShapes.count >= 2 else { throw mismatch("\(kind) takes at least 2 inputs, got \(inputShapes.count)") }
        var out = inputShapes[0]
        for s in inputShapes.dropFirst() {
            guard s.count == out.count, zip(s, out).allSatisfy({ $0 == $1 || $0 == -1 || $1 == -1 }) else {
                throw mismatch("inputs differ in shape: \(inputShapes)")
            }
            out = zip(out, s).map { $0 == -1 ? $1 : $0 }
        }
        return out
    }

    private func check(_ inputs: [Tensor]) throws {
        guard inputs.count >= 2 else { throw mismatch("\(kind) takes at least 2 inputs, got \(inputs.count)") }
        guard inputs.allSatisfy({ $0.shape == inputs[0].shape }) else {
            throw mismatch("inputs differ in shape: \(inputs.map(\.shape))")
        }
    }

    /// For each element, which input holds the extreme value (the first of equals).
    private func winners(_ inputs: [Tensor]) -> [Int] {
        var best = inputs[0].scalars
        var who = [Int](repeating: 0, count: best.count)
        for (k, t) in inputs.enumerated().dropFirst() {
            for i in best.indices {
                let v = t.scalars[i]
                if largest ? v > best[i] : v < best[i] {
                    best[i] = v
                    who[i] = k
                }
            }
        }
        return who
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        try check(inputs)
        var y = inputs[0].scalars
        for t in inputs.dropFirst() {
            for i in y.indices { y[i] = largest ? max(y[i], t.scalars[i]) : min(y[i], t.scalars[i]) }
        }
        return Tensor(shape: inputs[0].shape, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        try check(inputs)
        guard outputGradient.shape == inputs[0].shape else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the inputs \(inputs[0].shape)")
        }
        let who = winners(inputs)
        var grads = inputs.map { Tensor(zeros: $0.shape) }
        for i in who.indices { grads[who[i]].scalars[i] = outputGradient.scalars[i] }
        return grads
    }
}
