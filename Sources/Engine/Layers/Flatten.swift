/// Keras `Flatten` (channels_last): a reshape of each sample to one axis, in
/// NHWC order, which is Keras' order. Backward reshapes the gradient back.
public final class Flatten: Layer {
    public let name: String
    public var kind: String { "Flatten" }

    public init(name: String) {
        self.name = name
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        if s.contains(-1) { return [-1] }
        guard s.allSatisfy({ $0 >= 0 }) else { throw mismatch("invalid input shape \(s)") }
        return [s.reduce(1, *)]
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        guard x.rank >= 1 else { throw mismatch("Flatten needs a batch axis") }
        return x.reshaped([x.batch, x.sampleCount])
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard x.rank >= 1, outputGradient.shape == [x.batch, x.sampleCount] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        return [outputGradient.reshaped(x.shape)]
    }
}
