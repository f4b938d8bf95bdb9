/// Keras `Rescaling`: `x · scale + offset` with scalar scale and offset (models that
/// carry their own input scaling, e.g. EfficientNet). Backward: the gradient times scale.
public final class Rescaling: Layer {
    public let name: String
    public var kind: String { "Rescaling" }
    public let scale: Float
    public let offset: Float

    public init(name: String, scale: Float, offset: Float) {
        self.name = name
        self.scale = scale
        self.offset = offset
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        try singleShape(inputShapes)
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        return Tensor(shape: x.shape, scalars: x.scalars.map { $0 * scale + offset })
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard outputGradient.shape == x.shape else { throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)") }
        return [Tensor(shape: x.shape, scalars: outputGradient.scalars.map { $0 * scale })]
    }
}
