/// Keras `PReLU`: x where x > 0, α·x elsewhere, with a learned α per position
/// and channel, shared (size 1) along `shared_axes`. Keras computes
/// relu(x) − α·relu(−x), so at x = 0 the output and both one-sided
/// derivatives TensorFlow uses are 0. Backward: g·1 where x > 0, g·α where x < 0.
public final class PReLU: Layer {
    public let name: String
    public var kind: String { "PReLU" }
    /// α with the per-sample input's rank; a shared axis has size 1.
    public let alpha: Tensor

    public init(name: String, alpha: Tensor) {
        self.name = name
        self.alpha = alpha
    }

    public var parameterCount: Int { alpha.count }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        guard alpha.rank == s.count, zip(alpha.shape, s).allSatisfy({ $0 == 1 || $0 == $1 || $1 == -1 }) else {
            throw mismatch("alpha \(alpha.shape) does not fit the input \(s) (each axis its size or 1)")
        }
        return s
    }

    /// For each element of one sample, the index of its α (broadcasting size-1 axes).
    private func alphaIndex(sampleShape s: [Int]) throws -> [Int] {
        guard alpha.rank == s.count, zip(alpha.shape, s).allSatisfy({ $0 == 1 || $0 == $1 }) else {
            throw mismatch("alpha \(alpha.shape) does not fit the input \(s) (each axis its size or 1)")
        }
        return broadcastSourceIndex(of: alpha.shape, in: s)
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        let index = try alphaIndex(sampleShape: x.sampleShape)
        let per = max(1, x.sampleCount)
        let a = alpha.scalars
        var y = x.scalars
        for i in 0..<y.count where y[i] <= 0 { y[i] = y[i] < 0 ? a[index[i % per]] * y[i] : 0 }
        return Tensor(shape: x.shape, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard outputGradient.shape == x.shape else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        let index = try alphaIndex(sampleShape: x.sampleShape)
        let per = max(1, x.sampleCount)
        let a = alpha.scalars
        var d = outputGradient.scalars
        for i in 0..<d.count where x.scalars[i] <= 0 { d[i] = x.scalars[i] < 0 ? d[i] * a[index[i % per]] : 0 }
        return [Tensor(shape: x.shape, scalars: d)]
    }
}
