/// Keras `Add`: the element-wise sum of two or more inputs of the same shape,
/// optionally weighted: Σ cᵢ·xᵢ covers `x − y` (1, −1) and InceptionResNetV2's
/// `CustomScaleLayer` x₀ + x₁·scale (1, scale). Backward hands input i the
/// output gradient times cᵢ.
public final class Add: Layer {
    public let name: String
    public let kind: String
    /// One per input; nil: all 1.
    public let coefficients: [Float]?

    public init(name: String, coefficients: [Float]? = nil, kind: String = "Add") {
        self.name = name
        self.coefficients = coefficients
        self.kind = kind
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        guard inputShapes.count >= 2 else { throw mismatch("Add takes at least 2 inputs, got \(inputShapes.count)") }
        if let c = coefficients, c.count != inputShapes.count {
            throw mismatch("\(c.count) coefficients for \(inputShapes.count) inputs")
        }
        var out = inputShapes[0]
        for s in inputShapes.dropFirst() {
            guard s.count == out.count else { throw mismatch("inputs differ in shape: \(inputShapes)") }
            for i in 0..<s.count {
                if out[i] == -1 {
                    out[i] = s[i]
                } else if s[i] != -1 && s[i] != out[i] {
                    throw mismatch("inputs differ in shape: \(inputShapes)")
                }
            }
        }
        return out
    }

    private func check(_ inputs: [Tensor]) throws {
        guard inputs.count >= 2 else { throw mismatch("Add takes at least 2 inputs, got \(inputs.count)") }
        guard inputs.allSatisfy({ $0.shape == inputs[0].shape }) else {
            throw mismatch("inputs differ in shape: \(inputs.map(\.shape))")
        }
        if let c = coefficients, c.count != inputs.count { throw mismatch("\(c.count) coefficients for \(inputs.count) inputs") }
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        try check(inputs)
        var sum = inputs[0].scalars
        let c = coefficients
        sum.withUnsafeMutableBufferPointer { s in
            if let c0 = c?[0], c0 != 1 { for i in 0..<s.count { s[i] *= c0 } }
            for (k, t) in inputs.enumerated().dropFirst() {
                t.scalars.withUnsafeBufferPointer { x in
                    if let ck = c?[k], ck != 1 {
                        for i in 0..<s.count { s[i] += x[i] * ck }
                    } else {
                        for i in 0..<s.count { s[i] += x[i] }
                    }
                }
            }
        }
        return Tensor(shape: inputs[0].shape, scalars: sum)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        try check(inputs)
        guard outputGradient.shape == inputs[0].shape else {
            throw mismatch("output gradient \(outputGradient.shape) does not match inputs \(inputs[0].shape)")
        }
        guard let c = coefficients else { return Array(repeating: outputGradient, count: inputs.count) }
        return c.map { ck in ck == 1 ? outputGradient : Tensor(shape: outputGradient.shape, scalars: outputGradient.scalars.map { $0 * ck })
        }
    }
}
