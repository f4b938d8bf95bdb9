/// Keras `RMSNormalization` and `UnitNormalization` over the last axis: per position,
/// y = x · r · s with r = 1 / √max(Σx² / d + ε, floor): d = the channel count and ε the
/// layer's epsilon for RMSNormalization (`ops.rms_normalization`, an optional per-channel
/// scale s); d = 1, ε = 0 and floor 1e-24 for UnitNormalization (`ops.normalize`: the
/// inverse norm capped at 1e12). Backward: dx_k = g_k s_k r − x_k r³ Σ_j g_j s_j x_j / d,
/// and only the first term where the floor holds.
public final class RootMeanSquareScaling: Layer {
    public let name: String
    public let kind: String
    public let scale: Tensor?
    public let meanOverChannels: Bool
    public let epsilon: Float
    public let floor: Double

    public init(name: String, kind: String, scale: Tensor?, meanOverChannels: Bool, epsilon: Float, floor: Double = 0) {
        self.name = name
        self.kind = kind
        self.scale = scale
        self.meanOverChannels = meanOverChannels
        self.epsilon = epsilon
        self.floor = floor
    }

    public static func unitNormalization(name: String) -> RootMeanSquareScaling {
        RootMeanSquareScaling(name: name, kind: "UnitNormalization", scale: nil, meanOverChannels: false, epsilon: 0, floor: 1e-24)
    }

    public var parameterCount: Int { scale?.count ?? 0 }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        guard let c = s.last else { throw mismatch("\(kind) needs a channel axis") }
        if let k = scale?.count, c != -1, c != k { throw mismatch("expects \(k) channels, got \(c)") }
        return s
    }

    /// Per position: r, and whether the floor holds (no gradient through r).
    private func factors(_ x: Tensor) throws -> (c: Int, r: [Double], floored: [Bool]) {
        guard let c = x.shape.last, c > 0, x.rank >= 2 else { throw mismatch("expected a batch with a channel axis, got \(x.shape)") }
        if let k = scale?.count, k != c { throw mismatch("expects \(k) channels, got \(c)") }
        let rows = x.count / c
        var r = [Double](repeating: 0, count: rows)
        var floored = [Bool](repeating: false, count: rows)
        x.scalars.withUnsafeBufferPointer { xs in
            for i in 0..<rows {
                var sq = 0.0
                for j in 0..<c { sq += Double(xs[i * c + j]) * Double(xs[i * c + j]) }
                let v = sq / (meanOverChannels ? Double(c) : 1) + Double(epsilon)
                floored[i] = v < floor
                r[i] = 1 / max(v, floor).squareRoot()
            }
        }
        return (c, r, floored)
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        let (c, r, _) = try factors(x)
        let s = scale?.scalars
        var y = x.scalars
        for i in 0..<r.count {
            for j in 0..<c { y[i * c + j] = Float(Double(y[i * c + j]) * r[i]) * (s?[j] ?? 1) }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard outputGradient.shape == x.shape else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        let (c, r, floored) = try factors(x)
        let (xs, gs, s) = (x.scalars, outputGradient.scalars, scale?.scalars)
        let d = meanOverChannels ? Double(c) : 1
        var dx = [Float](repeating: 0, count: x.count)
        for i in 0..<r.count {
            var dot = 0.0
            if !floored[i] { for j in 0..<c { dot += Double(gs[i * c + j]) * Double(s?[j] ?? 1) * Double(xs[i * c + j]) } }
            let r3 = r[i] * r[i] * r[i] * dot / d
            for j in 0..<c {
                dx[i * c + j] = Float(Double(gs[i * c + j]) * Double(s?[j] ?? 1) * r[i] - Double(xs[i * c + j]) * r3)
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
