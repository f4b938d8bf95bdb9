/// Keras `GlobalAveragePooling2D` (channels_last): the mean over height and
/// width, `[n, h, w, c]` → `[n, c]` (or `[n, 1, 1, c]` with `keepDims`).
/// A single memory-bound pass; plain Swift loops both ways.
public final class GlobalAveragePooling2D: Layer {
    public let name: String
    public var kind: String { "GlobalAveragePooling2D" }
    public let keepDims: Bool

    public init(name: String, keepDims: Bool) {
        self.name = name
        self.keepDims = keepDims
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        try globalPoolingShape(inputShapes, keepDims: keepDims)
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        let (n, hw, c) = (x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
        guard hw > 0 else { throw mismatch("cannot average an empty \(x.shape) feature map") }
        var y = [Float](repeating: 0, count: n * c)
        let inv = 1 / Float(hw)
        x.scalars.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                for b in 0..<n {
                    let out = b * c
                    for p in 0..<hw {
                        let base = (b * hw + p) * c
                        for k in 0..<c { ys[out + k] += xs[base + k] }
                    }
                    for k in 0..<c { ys[out + k] *= inv }
                }
            }
        }
        return Tensor(shape: keepDims ? [n, 1, 1, c] : [n, c], scalars: y)
    }

    // MARK: backward to the input

    /// Every input cell of a channel receives that channel's gradient / (h·w).
    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        let (n, hw, c) = (x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
        let expected = keepDims ? [n, 1, 1, c] : [n, c]
        guard outputGradient.shape == expected else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output \(expected)")
        }
        guard hw > 0 else { return [Tensor(zeros: x.shape)] }
        let inv = 1 / Float(hw)
        var dx = [Float](repeating: 0, count: x.count)
        outputGradient.scalars.withUnsafeBufferPointer { gs in
            dx.withUnsafeMutableBufferPointer { d in
                for b in 0..<n {
                    for p in 0..<hw {
                        let base = (b * hw + p) * c
                        for k in 0..<c { d[base + k] = gs[b * c + k] * inv }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
