import Foundation

/// Keras `LayerNormalization` over the last axis (ConvNeXt's, and every
/// channels-last use): per position, x̂ = (x − μ) / √(σ² + ε) with the mean and
/// (biased) variance over the channels, then y = x̂·γ + β. Statistics are
/// accumulated in Double. Backward, per position with n channels and
/// ĝ = g·γ: dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) / √(σ² + ε).
public final class LayerNormalization: Layer {
    public let name: String
    public var kind: String { "LayerNormalization" }
    public let gamma: Tensor?
    public let beta: Tensor?
    public let epsilon: Float

    public init(name: String, gamma: Tensor?, beta: Tensor?, epsilon: Float) {
        self.name = name
        self.gamma = gamma
        self.beta = beta
        self.epsilon = epsilon
    }

    public var parameterCount: Int { (gamma?.count ?? 0) + (beta?.count ?? 0) }

    private var channels: Int? { gamma?.count ?? beta?.count }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        guard let last = s.last else { throw mismatch("LayerNormalization needs at least one axis") }
        if let c = channels, last != c && last != -1 { throw mismatch("expects \(c) channels on the last axis, got \(s)") }
        return s
    }

    /// Runs `body(row, mean, inverse standard deviation)` for each position's channel row.
    private func rows(_ x: Tensor, _ body: (Int, Float, Float) -> Void) throws -> Int {
        guard let c = x.shape.last, c > 0 else { throw mismatch("LayerNormalization needs a non-empty last axis, got \(x.shape)") }
        if let k = channels, k != c { throw mismatch("expects \(k) channels on the last axis, got \(x.shape)") }
        x.scalars.withUnsafeBufferPointer { xs in
            for r in 0..<(xs.count / c) {
                var sum = 0.0
                for j in 0..<c { sum += Double(xs[r * c + j]) }
                let mean = sum / Double(c)
                var sq = 0.0
                for j in 0..<c {
                    let d = Double(xs[r * c + j]) - mean
                    sq += d * d
                }
                let inv = 1 / (sq / Double(c) + Double(epsilon)).squareRoot()
                body(r, Float(mean), Float(inv))
            }
        }
        return c
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        var y = [Float](repeating: 0, count: x.count)
        let g = gamma?.scalars
        let b = beta?.scalars
        let xs = x.scalars
        let c = x.shape.last ?? 1
        _ = try rows(x) { r, mean, inv in
            for j in 0..<c {
                var v = (xs[r * c + j] - mean) * inv
                if let g { v *= g[j] }
                if let b { v += b[j] }
                y[r * c + j] = v
            }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard outputGradient.shape == x.shape else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        let xs = x.scalars
        let gs = outputGradient.scalars
        let gamma = self.gamma?.scalars
        let c = x.shape.last ?? 1
        var dx = [Float](repeating: 0, count: x.count)
        var xhat = [Double](repeating: 0, count: c)
        var ghat = [Double](repeating: 0, count: c)
        _ = try rows(x) { r, mean, inv in
            var meanG = 0.0
            var meanGX = 0.0
            for j in 0..<c {
                xhat[j] = Double(xs[r * c + j] - mean) * Double(inv)
                ghat[j] = Double(gs[r * c + j]) * Double(gamma?[j] ?? 1)
                meanG += ghat[j]
                meanGX += ghat[j] * xhat[j]
            }
            meanG /= Double(c)
            meanGX /= Double(c)
            for j in 0..<c { dx[r * c + j] = Float((ghat[j] - meanG - xhat[j] * meanGX) * Double(inv)) }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
