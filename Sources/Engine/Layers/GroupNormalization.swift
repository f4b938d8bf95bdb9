/// Keras `GroupNormalization` (channels last): the channels split into `groups` equal
/// groups; per sample and group, x̂ = (x − μ) / √(σ² + ε) with the mean and (biased)
/// variance over every position and channel of the group, then y = x̂·γ + β per
/// channel. Statistics in Double. Backward, per sample and group of m elements and
/// ĝ = g·γ: dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) / √(σ² + ε), as `LayerNormalization`'s.
public final class GroupNormalization: Layer {
    public let name: String
    public var kind: String { "GroupNormalization" }
    public let groups: Int
    public let gamma: Tensor?
    public let beta: Tensor?
    public let epsilon: Float

    public init(name: String, groups: Int, gamma: Tensor?, beta: Tensor?, epsilon: Float) {
        self.name = name
        self.groups = groups
        self.gamma = gamma
        self.beta = beta
        self.epsilon = epsilon
    }

    public var parameterCount: Int { (gamma?.count ?? 0) + (beta?.count ?? 0) }

    private func check(channels c: Int) throws {
        guard groups > 0, c > 0, c % groups == 0 else { throw mismatch("\(c) channels do not split into \(groups) groups") }
        for t in [gamma, beta].compactMap({ $0 }) where t.count != c {
            throw mismatch("expects \(t.count) channels, got \(c)")
        }
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        guard let c = s.last else { throw mismatch("GroupNormalization needs a channel axis") }
        if c != -1 { try check(channels: c) }
        return s
    }

    /// Per sample and group: the group's mean and inverse standard deviation.
    private func statistics(_ x: Tensor) throws -> (c: Int, positions: Int, mean: [Double], inverse: [Double]) {
        guard x.rank >= 2, let c = x.shape.last else { throw mismatch("expected a batch with a channel axis, got \(x.shape)") }
        try check(channels: c)
        let n = x.shape[0]
        let positions = n == 0 ? 0 : x.count / (n * c)
        let size = c / groups
        let m = Double(positions * size)
        var mean = [Double](repeating: 0, count: n * groups)
        var inverse = [Double](repeating: 0, count: n * groups)
        x.scalars.withUnsafeBufferPointer { xs in
            for b in 0..<n {
                for g in 0..<groups {
                    var sum = 0.0
                    for p in 0..<positions {
                        let row = (b * positions + p) * c + g * size
                        for j in 0..<size { sum += Double(xs[row + j]) }
                    }
                    let mu = sum / m
                    var sq = 0.0
                    for p in 0..<positions {
                        let row = (b * positions + p) * c + g * size
                        for j in 0..<size {
                            let d = Double(xs[row + j]) - mu
                            sq += d * d
                        }
                    }
                    mean[b * groups + g] = mu
                    inverse[b * groups + g] = 1 / (sq / m + Double(epsilon)).squareRoot()
                }
            }
        }
        return (c, positions, mean, inverse)
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        let (c, positions, mean, inverse) = try statistics(x)
        let size = c / groups
        var y = x.scalars
        let (gs, bs) = (gamma?.scalars, beta?.scalars)
        for b in 0..<x.shape[0] {
            for p in 0..<positions {
                let row = (b * positions + p) * c
                for k in 0..<c {
                    let s = b * groups + k / size
                    var v = Float((Double(y[row + k]) - mean[s]) * inverse[s])
                    if let gs { v *= gs[k] }
                    if let bs { v += bs[k] }
                    y[row + k] = v
                }
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
        let (c, positions, mean, inverse) = try statistics(x)
        let size = c / groups
        let m = Double(positions * size)
        let (xs, gs, gamma) = (x.scalars, outputGradient.scalars, self.gamma?.scalars)
        var dx = [Float](repeating: 0, count: x.count)
        for b in 0..<x.shape[0] {
            for g in 0..<groups {
                let s = b * groups + g
                var meanG = 0.0
                var meanGX = 0.0
                for p in 0..<positions {
                    for j in 0..<size {
                        let i = (b * positions + p) * c + g * size + j
                        let ghat = Double(gs[i]) * Double(gamma?[g * size + j] ?? 1)
                        meanG += ghat
                        meanGX += ghat * (Double(xs[i]) - mean[s]) * inverse[s]
                    }
                }
                meanG /= m
                meanGX /= m
                for p in 0..<positions {
                    for j in 0..<size {
                        let i = (b * positions + p) * c + g * size + j
                        let ghat = Double(gs[i]) * Double(gamma?[g * size + j] ?? 1)
                        let xhat = (Double(xs[i]) - mean[s]) * inverse[s]
                        dx[i] = Float((ghat - meanG - xhat * meanGX) * inverse[s])
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
