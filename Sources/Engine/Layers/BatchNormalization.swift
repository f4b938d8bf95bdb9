/// Keras `BatchNormalization` at inference, on the last axis:
/// y = x·s + t with s = γ/√(var+ε) and t = β − mean·s, computed the way
/// `tf.nn.batch_normalization` does. A per-channel affine map is memory-bound;
/// one tight loop over the NHWC buffer needs no reorders and beats calling a
/// library, so this is plain Swift. Backward: dL/dx = dL/dy · s.
public final class BatchNormalization: Layer {
    public let name: String
    public var kind: String { "BatchNormalization" }
    public let gamma: Tensor?
    public let beta: Tensor?
    public let movingMean: Tensor
    public let movingVariance: Tensor
    public let epsilon: Float
    private let scale: [Float]
    private let shift: [Float]
    private let invalid: String?

    public init(name: String, gamma: Tensor?, beta: Tensor?, movingMean: Tensor, movingVariance: Tensor,
                epsilon: Float) {
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
                    || (beta.map { $0.shape != [c] } ?? false) {
            invalid = "gamma, beta, moving_mean and moving_variance must all be [\(c)]"
        } else {
            invalid = nil
        }
        var s = [Float](repeating: 1, count: c), t = [Float](repeating: 0, count: c)
        if invalid == nil {
            for i in 0..<c {
                var inv = 1 / (movingVariance.scalars[i] + epsilon).squareRoot()
                if let gamma { inv *= gamma.scalars[i] }
                s[i] = inv
                t[i] = (beta?.scalars[i] ?? 0) - movingMean.scalars[i] * inv
            }
        }
        scale = s
        shift = t
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

    /// out[i] = in[i] · a[i mod c] + b[i mod c] (b nil: no shift).
    private func affine(_ input: [Float], _ a: [Float], _ b: [Float]?) -> [Float] {
        let c = channels
        return input.withUnsafeBufferPointer { x in
            uninitializedFloats(x.count) { y in
                a.withUnsafeBufferPointer { a in
                    var base = 0
                    if let b {
                        b.withUnsafeBufferPointer { b in
                            while base < x.count {
                                for j in 0..<c { y[base + j] = x[base + j] * a[j] + b[j] }
                                base += c
                            }
                        }
                    } else {
                        while base < x.count {
                            for j in 0..<c { y[base + j] = x[base + j] * a[j] }
                            base += c
                        }
                    }
                }
            }
        }
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        try check(x)
        return Tensor(shape: x.shape, scalars: affine(x.scalars, scale, shift))
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        try check(x)
        guard outputGradient.shape == x.shape else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        return [Tensor(shape: x.shape, scalars: affine(outputGradient.scalars, scale, nil))]
    }
}
