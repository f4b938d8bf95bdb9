/// A layer that passes its input through at inference: `InputLayer`,
/// `Dropout`, `GaussianNoise`, `ActivityRegularization`, ... (`kind` names
/// which). Backward passes the gradient through.
public final class Identity: Layer {
    public let name: String
    public let kind: String

    public init(name: String, kind: String) {
        self.name = name
        self.kind = kind
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        try singleShape(inputShapes)
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        try singleInput(inputs)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard outputGradient.shape == x.shape else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        return [outputGradient]
    }
}
