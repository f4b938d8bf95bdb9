/// Keras `MaxPooling2D` (channels_last). Forward on oneDNN (`pooling_max`,
/// NHWC in place, no reorders); padded cells are never selected.
///
/// Backward is a Swift loop rather than oneDNN's max-pooling backward: that
/// one needs the forward's workspace, i.e. re-running a training forward just
/// to recover argmaxes we can find in the same single pass over the input. The
/// loop also pins down the tie rule explicitly: the gradient goes to the FIRST
/// maximum in row-major window order, as TensorFlow's MaxPoolGrad does.
/// Pooling is a small share of a CNN's backward time next to the convolutions.
public final class MaxPooling2D: Layer {
    public let name: String
    public var kind: String { "MaxPooling2D" }
    public let poolSize: [Int]
    public let strides: [Int]
    public let padding: Padding
    private let invalid: String?
    private let pool: DNNLPooling

    public init(name: String, poolSize: [Int], strides: [Int], padding: Padding) {
        self.name = name
        self.poolSize = poolSize
        self.strides = strides
        self.padding = padding
        invalid = checkPair(poolSize, "pool_size") ?? checkPair(strides, "strides")
        pool = DNNLPooling(kind: .max, pool: poolSize, strides: strides, padding: padding)
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        try pooledShape(inputShapes, invalid: invalid, pool: pool)
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let (x, g) = try pooledInput(inputs, invalid: invalid, pool: pool)
        if g.n == 0 || g.c == 0 { return Tensor(zeros: [g.n, g.oh, g.ow, g.c]) }
        return try pool.forward(x)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let (x, g) = try pooledInput(inputs, invalid: invalid, pool: pool)
        guard outputGradient.shape == [g.n, g.oh, g.ow, g.c] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output \([g.n, g.oh, g.ow, g.c])")
        }
        let c = g.c
        let (sy, sx, py, px) = (strides[0], strides[1], poolSize[0], poolSize[1])
        // Windows that never overlap (stride ≥ pool, VGG's 2×2/2): each input
        // row belongs to at most one window row, so window rows are independent
        // tasks. Task `oy` owns input rows [start(oy), start(oy + 1)) — its
        // window's rows plus any gap before the next window — zeroes them and
        // scatters into them while they are in cache: one pass over dx instead
        // of a separate zero fill. Overlapping windows add into shared rows, so
        // there a task is a whole sample.
        let disjoint = sy >= py && sx >= px
        // Windows that cover every input cell exactly once: nothing to zero first.
        let tiled = sy == py && sx == px && g.padTop == 0 && g.padLeft == 0
            && g.oh * sy == g.h && g.ow * sx == g.w
        let rowsPerTask = disjoint ? 1 : g.oh
        let tasksPerSample = disjoint ? g.oh : 1
        @Sendable func start(_ oy: Int) -> Int {
            if !disjoint { return oy == 0 ? 0 : g.h }
            return oy == 0 ? 0 : (oy >= g.oh ? g.h : min(g.h, max(0, oy * sy - g.padTop)))
        }
        let dx = x.scalars.withUnsafeBufferPointer { xb in
            outputGradient.scalars.withUnsafeBufferPointer { gb in
                uninitializedFloats(x.count) { db in
                    let xs = SharedPointer(xb), gs = SharedPointer(gb), ds = SharedPointer(db)
                    let rowBytes = g.w * c
                    // grain: rows of a few thousand scalars are worth a task each
                    parallelFor(g.n * tasksPerSample, grain: max(1, (1 << 14) / max(1, rowBytes * py))) { tasks in
                        let xp = UnsafeRawPointer(xs.p), gp = UnsafeRawPointer(gs.p), dp = ds.p
                        for task in tasks {
                            let n = task / tasksPerSample
                            let oy0 = (task % tasksPerSample) * rowsPerTask
                            let r0 = start(oy0), r1 = start(oy0 + rowsPerTask)
                            if !tiled {
                                (dp + (n * g.h + r0) * rowBytes).initialize(repeating: 0, count: (r1 - r0) * rowBytes)
                            }
                            if disjoint {
                                // Every input cell lies in at most one window: store
                                // g or 0 into each window cell with vector selects
                                // (no read-modify-write, no index arithmetic per lane).
                                let oy = oy0
                                let y0 = oy * sy - g.padTop
                                let ys = max(0, y0)..<min(g.h, y0 + py)
                                for ox in 0..<g.ow {
                                    let x0 = ox * sx - g.padLeft
                                    let xr = max(0, x0)..<min(g.w, x0 + px)
                                    let out = ((n * g.oh + oy) * g.ow + ox) * c
                                    var k = 0
                                    while k + 8 <= c {
                                        var best = SIMD8<Float>(repeating: -.infinity)
                                        var arg = SIMD8<Int32>(repeating: 0)
                                        var pos: Int32 = 0
                                        for iy in ys {
                                            for ix in xr {
                                                let v = xp.loadUnaligned(fromByteOffset: (((n * g.h + iy) * g.w + ix) * c + k) * 4,
                                                                         as: SIMD8<Float>.self)
                                                let better = v .> best   // strict: the first maximum wins
                                                best.replace(with: v, where: better)
                                                arg.replace(with: SIMD8(repeating: pos), where: better)
                                                pos += 1
                                            }
                                        }
                                        let gv = gp.loadUnaligned(fromByteOffset: (out + k) * 4, as: SIMD8<Float>.self)
                                        pos = 0
                                        for iy in ys {
                                            for ix in xr {
                                                var v = SIMD8<Float>(repeating: 0)
                                                v.replace(with: gv, where: arg .== SIMD8(repeating: pos))
                                                UnsafeMutableRawPointer(dp).storeBytes(
                                                    of: v, toByteOffset: (((n * g.h + iy) * g.w + ix) * c + k) * 4,
                                                    as: SIMD8<Float>.self)
                                                pos += 1
                                            }
                                        }
                                        k += 8
                                    }
                                    while k < c {
                                        var best = -Float.infinity
                                        var (by, bx) = (ys.lowerBound, xr.lowerBound)
                                        for iy in ys {
                                            for ix in xr {
                                                let i = ((n * g.h + iy) * g.w + ix) * c + k
                                                let v = xp.load(fromByteOffset: i * 4, as: Float.self)
                                                if v > best { best = v; (by, bx) = (iy, ix) }
                                                dp[i] = 0
                                            }
                                        }
                                        dp[((n * g.h + by) * g.w + bx) * c + k] =
                                            gp.load(fromByteOffset: (out + k) * 4, as: Float.self)
                                        k += 1
                                    }
                                }
                                continue
                            }
                            for oy in oy0..<(oy0 + rowsPerTask) {
                                let y0 = oy * sy - g.padTop
                                let ys = max(0, y0)..<min(g.h, y0 + py)
                                for ox in 0..<g.ow {
                                    let x0 = ox * sx - g.padLeft
                                    let xr = max(0, x0)..<min(g.w, x0 + px)
                                    let out = ((n * g.oh + oy) * g.ow + ox) * c
                                    // Channels 8 at a time: best value and its window
                                    // position (row-major), updated with vector selects
                                    // — the data-dependent branches of a scalar loop
                                    // mispredict on every other element.
                                    var k = 0
                                    while k < c {
                                        let lanes = min(8, c - k)
                                        var best = SIMD8<Float>(repeating: -.infinity)
                                        var arg = SIMD8<Int32>(repeating: 0)
                                        var pos: Int32 = 0
                                        for iy in ys {
                                            for ix in xr {
                                                let base = ((n * g.h + iy) * g.w + ix) * c + k
                                                var v = SIMD8<Float>(repeating: -.infinity)
                                                if lanes == 8 {
                                                    v = xp.loadUnaligned(fromByteOffset: base * 4, as: SIMD8<Float>.self)
                                                } else {
                                                    for l in 0..<lanes { v[l] = xp.load(fromByteOffset: (base + l) * 4, as: Float.self) }
                                                }
                                                // strict '>' keeps the first maximum (position 0 always
                                                // wins over −∞ unless the input itself is −∞/NaN)
                                                let better = v .> best
                                                best.replace(with: v, where: better)
                                                arg.replace(with: SIMD8(repeating: pos), where: better)
                                                pos += 1
                                            }
                                        }
                                        let w = Int32(xr.count)
                                        for l in 0..<lanes {
                                            let iy = ys.lowerBound + Int(arg[l] / w)
                                            let ix = xr.lowerBound + Int(arg[l] % w)
                                            dp[((n * g.h + iy) * g.w + ix) * c + k + l] +=
                                                gp.load(fromByteOffset: (out + k + l) * 4, as: Float.self)
                                        }
                                        k += 8
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}

// Shape handling shared by the 2-D pooling layers.
extension Layer {
    func pooledShape(_ inputShapes: [[Int]], invalid: String?, pool: DNNLPooling) throws -> [Int] {
        if let invalid { throw mismatch(invalid) }
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: nil)
        var out = [-1, -1, s[2]]
        for axis in 0..<2 where s[axis] != -1 {
            let size = pool.padding.outputSizeAndPadding(input: s[axis], kernel: pool.pool[axis],
                                                         stride: pool.strides[axis]).size
            guard size > 0 else { throw mismatch("input \(s) is smaller than the \(pool.pool) pooling window") }
            out[axis] = size
        }
        return out
    }

    func pooledInput(_ inputs: [Tensor], invalid: String?, pool: DNNLPooling) throws
        -> (Tensor, DNNLPooling.Geometry)
    {
        if let invalid { throw mismatch(invalid) }
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        guard let g = pool.geometry(x.shape) else {
            throw mismatch("input \(x.shape) is smaller than the \(pool.pool) pooling window")
        }
        return (x, g)
    }
}
