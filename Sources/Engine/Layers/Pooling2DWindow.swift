/// What the 2-D pooling layers share: the window settings and their validation,
/// the output shape, the forward on oneDNN, and the input checks before a
/// backward. `MaxPooling2D` and `AveragePooling2D` differ only in how the
/// window reduces, i.e. in the oneDNN kind and in their own backward.
struct Pooling2DWindow: Sendable {
    /// Why the settings cannot work (reported by every call), or nil.
    let invalid: String?
    /// oneDNN's pooling, which also keeps pool size, strides and padding.
    let pool: DNNLPooling

    init(kind: DNNLPooling.Kind, poolSize: [Int], strides: [Int], padding: Padding) {
        invalid = checkPair(poolSize, "pool_size") ?? checkPair(strides, "strides")
        pool = DNNLPooling(kind: kind, pool: poolSize, strides: strides, padding: padding)
    }

    var poolSize: [Int] { pool.pool }
    var strides: [Int] { pool.strides }
    var padding: Padding { pool.padding }
}

extension Layer {
    func pooledShape(_ inputShapes: [[Int]], _ window: Pooling2DWindow) throws -> [Int] {
        if let invalid = window.invalid { throw mismatch(invalid) }
        let pool = window.pool
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: nil)
        var out = [-1, -1, s[2]]
        for axis in 0..<2 where s[axis] != -1 {
            let size = pool.padding.outputSizeAndPadding(
                input: s[axis], kernel: pool.pool[axis],
                stride: pool.strides[axis]
            ).size
            guard size > 0 else { throw mismatch("input \(s) is smaller than the \(pool.pool) pooling window") }
            out[axis] = size
        }
        return out
    }

    func pooledInput(_ inputs: [Tensor], _ window: Pooling2DWindow) throws -> (Tensor, DNNLPooling.Geometry) {
        if let invalid = window.invalid { throw mismatch(invalid) }
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        guard let g = window.pool.geometry(x.shape) else {
            throw mismatch("input \(x.shape) is smaller than the \(window.pool.pool) pooling window")
        }
        return (x, g)
    }

    func pooledForward(_ inputs: [Tensor], _ window: Pooling2DWindow) throws -> Tensor {
        let (x, g) = try pooledInput(inputs, window)
        if g.n == 0 || g.c == 0 { return Tensor(zeros: [g.n, g.oh, g.ow, g.c]) }
        return try window.pool.forward(x)
    }

    /// The checked input and geometry for a backward, once the output gradient
    /// is known to have the output's shape.
    func pooledBackwardInput(_ inputs: [Tensor], _ window: Pooling2DWindow, outputGradient: Tensor) throws
        -> (Tensor, DNNLPooling.Geometry)
    {
        let (x, g) = try pooledInput(inputs, window)
        guard outputGradient.shape == [g.n, g.oh, g.ow, g.c] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output \([g.n, g.oh, g.ow, g.c])")
        }
        return (x, g)
    }
}
