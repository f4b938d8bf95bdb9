/// Keras `Add`: the element-wise sum of two or more inputs of the same shape.
/// Backward hands the output gradient to every input unchanged.
public final class Add: Layer {
    public let name: String
    public var kind: String { "Add" }

    public init(name: String) {
        self.name = name
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        guard inputShapes.count >= 2 else { throw mismatch("Add takes at least 2 inputs, got \(inputShapes.count)") }
        var out = inputShapes[0]
        for s in inputShapes.dropFirst() {
            guard s.count == out.count else { throw mismatch("inputs differ in shape: \(inputShapes)") }
            for i in 0..<s.count {
                if out[i] == -1 { out[i] = s[i] }
                else if s[i] != -1 && s[i] != out[i] { throw mismatch("inputs differ in shape: \(inputShapes)") }
            }
        }
        return out
    }

    private func check(_ inputs: [Tensor]) throws {
        guard inputs.count >= 2 else { throw mismatch("Add takes at least 2 inputs, got \(inputs.count)") }
        guard inputs.allSatisfy({ $0.shape == inputs[0].shape }) else {
            throw mismatch("inputs differ in shape: \(inputs.map(\.shape))")
        }
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        try check(inputs)
        var sum = inputs[0].scalars
        sum.withUnsafeMutableBufferPointer { s in
            for t in inputs.dropFirst() {
                t.scalars.withUnsafeBufferPointer { x in
                    for i in 0..<s.count { s[i] += x[i] }
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
        return Array(repeating: outputGradient, count: inputs.count)
    }
}
