/// Keras `BatchNormalization` at inference, on the last axis:
/// y = x·s + t with s = γ/√(var+ε) and t = β − mean·s, computed the way
/// `tf.nn.batch_normalization` does. That is a per-channel affine map, so s
/// and t are folded once here and both passes run on `ChannelAffine`'s kernel
/// (with center 0, (x − 0)·s + t is x·s + t to the bit). Backward: dL/dx = dL/dy · s.
public final class BatchNormalization: Layer {
    public let name: String
    public var kind: String { "BatchNormalization" }
    public let gamma: Tensor?
    public let beta: Tensor?
    public let movingMean: Tensor
    public let movingVariance: Tensor
    public let epsilon: Float
    private let invalid: String?
    /// x·s + t; nil when the weights are invalid. (An inference plan folds s
    /// and t into the convolution before it.)
    let affine: ChannelAffine?

    public init(
        name: String, gamma: Tensor?, beta: Tensor?, movingMean: Tensor, movingVariance: Tensor,
        epsilon: Float
    ) {
        self.name = name
        self.gamma = gamma
        self.beta = beta
        self.movingMean = movingMean
        self.movingVariance = movingVariance
        self.epsilon = epsilon
        let c = movingMean.count
        if movingMean.rank != 1 || c == 0 {
            invalid = "moving_mean must be a non-empty vector, got \(movingMean.shape)"
        } else if movingVariance.shape != [c] || (gamma.map { $0.shape != [c] } ?? false)
            || (beta.map { $0.shape != [c] } ?? false)
        {
            invalid = "gamma, beta, moving_mean and moving_variance must all be [\(c)]"
        } else {
            invalid = nil
        }
        var s = [Float](repeating: 1, count: c)
        var t = [Float](repeating: 0, count: c)
        if invalid == nil {
            for i in 0..<c {
                var inv = 1 / (movingVariance.scalars[i] + epsilon).squareRoot()
                if let gamma { inv *= gamma.scalars[i] }
                s[i] = inv
                t[i] = (beta?.scalars[i] ?? 0) - movingMean.scalars[i] * inv
            }
        }
        affine = invalid == nil ? ChannelAffine(name: name, kind: "BatchNormalization", scale: s, offset: t) : nil
    }

    public var parameterCount: Int {
        movingMean.count + movingVariance.count + (gamma?.count ?? 0) + (beta?.count ?? 0)
    }

    private var channels: Int { movingMean.count }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        if let invalid { throw mismatch(invalid) }
        let s = try singleShape(inputShapes)
        guard s.last == channels else { throw mismatch("expected \(channels) channels on the last axis, got \(s)") }
        return s
    }

    private func check(_ x: Tensor) throws {
        if let invalid { throw mismatch(invalid) }
        guard x.rank >= 2, x.shape.last == channels else {
            throw mismatch("expected \(channels) channels on the last axis, got \(x.shape)")
        }
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        try check(x)
        return try affine!.forward([x])
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        try check(x)
        guard outputGradient.shape == x.shape else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        return try affine!.backward([x], output: output, outputGradient: outputGradient)
    }
}
