/// Keras `GlobalMaxPooling2D` (channels_last): the maximum over height and width,
/// `[n, h, w, c]` → `[n, c]` (or `[n, 1, 1, c]` with `keepDims`).
/// Backward routes each channel's gradient to the cell holding its maximum (the first
/// one on a tie; random-weight models have none).
public final class GlobalMaxPooling2D: Layer {
    public let name: String
    public var kind: String { "GlobalMaxPooling2D" }
    public let keepDims: Bool

    public init(name: String, keepDims: Bool) {
        self.name = name
        self.keepDims = keepDims
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        try globalPoolingShape(inputShapes, keepDims: keepDims)
    }

    /// For each (sample, channel), the flat index of its maximum.
    private func argmax(_ x: Tensor) throws -> [Int] {
        try checkFeatureMap(x, channels: nil)
        let (n, hw, c) = (x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
        guard hw > 0 else { throw mismatch("cannot take the maximum of an empty \(x.shape) feature map") }
        var best = [Int](repeating: 0, count: n * c)
        for b in 0..<n {
            for k in 0..<c {
                var at = b * hw * c + k
                for p in 1..<max(1, hw) where x.scalars[(b * hw + p) * c + k] > x.scalars[at] { at = (b * hw + p) * c + k }
                best[b * c + k] = at
            }
        }
        return best
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        let best = try argmax(x)
        let (n, c) = (x.shape[0], x.shape[3])
        return Tensor(shape: keepDims ? [n, 1, 1, c] : [n, c], scalars: best.map { x.scalars[$0] })
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        let best = try argmax(x)
        guard outputGradient.count == best.count else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output")
        }
        var dx = [Float](repeating: 0, count: x.count)
        for (i, at) in best.enumerated() { dx[at] += outputGradient.scalars[i] }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
