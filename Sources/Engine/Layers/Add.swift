/// Keras `Add`: the element-wise sum of two or more inputs of the same shape,
/// optionally weighted: Σ cᵢ·xᵢ covers `x − y` (1, −1) and InceptionResNetV2's
/// `CustomScaleLayer` x₀ + x₁·scale (1, scale). Backward hands input i the
/// output gradient times cᵢ.
public final class Add: InPlaceLayer {
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
        var taken = inputs
        return try forward(consuming: &taken)
    }

    /// The sum written over the first input, over the compute threads.
    func forward(consuming inputs: inout [Tensor]) throws -> Tensor {
        try check(inputs)
        let others = Array(inputs.dropFirst())
        var sum = inputs[0]
        inputs = []
        let c = coefficients
        let c0 = c?[0] ?? 1
        sum.scalars.withUnsafeMutableBufferPointer { sb in
            let ss = SharedPointer(sb)
            parallelFor(sb.count) { range in
                let s = ss.p
                if c0 != 1 { for i in range { s[i] *= c0 } }
                for (k, t) in others.enumerated() {
                    t.scalars.withUnsafeBufferPointer { x in
                        let ck = c?[k + 1] ?? 1
                        if ck != 1 {
                            for i in range { s[i] += x[i] * ck }
                        } else {
                            for i in range { s[i] += x[i] }
                        }
                    }
                }
            }
        }
        return sum
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
