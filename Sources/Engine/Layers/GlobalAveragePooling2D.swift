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
        // Bands of rows are summed into partial sums of their own, spread over
        // the compute threads, then added in band order. The band count
        // follows the map's size only, so the rounding does not change with
        // the number of threads.
        let bands = min(8, max(1, hw * c / (1 << 15)))
        var partial = [Float](repeating: 0, count: bands * n * c)
        x.scalars.withUnsafeBufferPointer { xb in
            partial.withUnsafeMutableBufferPointer { pb in
                let (xs, ps) = (SharedPointer(xb), SharedPointer(pb))
                parallelFor(bands, grain: 1) { range in
                    let (x, sums) = (xs.p, ps.p)
                    for band in range {
                        for b in 0..<n {
                            let out = (band * n + b) * c
                            for p in (hw * band / bands)..<(hw * (band + 1) / bands) {
                                let (sums, x) = (sums + out, x + (b * hw + p) * c)
                                for k in 0..<c { sums[k] += x[k] }
                            }
                        }
                    }
                }
            }
        }
        let inv = 1 / Float(hw)
        var y = [Float](repeating: 0, count: n * c)
        for band in 0..<bands { for i in 0..<(n * c) { y[i] += partial[band * n * c + i] } }
        for i in 0..<(n * c) { y[i] *= inv }
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
        guard hw > 0, c > 0 else { return [Tensor(zeros: x.shape)] }
        let inv = 1 / Float(hw)
        var dx = [Float](repeating: 0, count: x.count)
        outputGradient.scalars.withUnsafeBufferPointer { gs in
            dx.withUnsafeMutableBufferPointer { d in
                for b in 0..<n {
                    for p in 0..<hw {
                        let (d, g) = (d.baseAddress! + (b * hw + p) * c, gs.baseAddress! + b * c)
                        for k in 0..<c { d[k] = g[k] * inv }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
