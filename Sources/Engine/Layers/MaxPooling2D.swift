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
    private let window: Pooling2DWindow
    public var poolSize: [Int] { window.poolSize }
    public var strides: [Int] { window.strides }
    public var padding: Padding { window.padding }

    public init(name: String, poolSize: [Int], strides: [Int], padding: Padding) {
        self.name = name
        window = Pooling2DWindow(kind: .max, poolSize: poolSize, strides: strides, padding: padding)
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] { try pooledShape(inputShapes, window) }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor { try pooledForward(inputs, window) }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let (x, g) = try pooledBackwardInput(inputs, window, outputGradient: outputGradient)
        let tasks = MaxPoolGradientTasks(g, pool: poolSize, strides: strides)
        let dx = x.scalars.withUnsafeBufferPointer { xb in
            outputGradient.scalars.withUnsafeBufferPointer { gb in
                uninitializedFloats(x.count) { db in
                    let step = MaxPoolGradientStep(tasks, x: xb, outputGradient: gb, dx: db)
                    parallelFor(tasks.count, grain: tasks.grain) { range in
                        for task in range { step.run(task) }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}

/// How max-pooling's backward splits into parallel tasks.
///
/// Windows that never overlap (stride ≥ pool, VGG's 2×2/2): each input row
/// belongs to at most one window row, so window rows are independent tasks.
/// Task `oy` owns input rows [start(oy), start(oy + 1)) — its window's rows plus
/// any gap before the next window — zeroes them and writes into them while they
/// are in cache: one pass over dx instead of a separate zero fill. Overlapping
/// windows add into shared rows, so there a task is a whole sample.
private struct MaxPoolGradientTasks: Sendable {
    let g: DNNLPooling.Geometry
    let sy: Int, sx: Int, py: Int, px: Int
    /// No two windows share an input cell.
    let disjoint: Bool
    /// The windows cover every input cell exactly once: nothing to zero first.
    let tiled: Bool
    let rowsPerTask: Int, tasksPerSample: Int

    init(_ g: DNNLPooling.Geometry, pool: [Int], strides: [Int]) {
        self.g = g
        (sy, sx, py, px) = (strides[0], strides[1], pool[0], pool[1])
        disjoint = sy >= py && sx >= px
        tiled =
            sy == py && sx == px && g.padTop == 0 && g.padLeft == 0
            && g.oh * sy == g.h && g.ow * sx == g.w
        rowsPerTask = disjoint ? 1 : g.oh
        tasksPerSample = disjoint ? g.oh : 1
    }

    var count: Int { g.n * tasksPerSample }
    /// Rows of a few thousand scalars are worth a task each.
    var grain: Int { max(1, (1 << 14) / max(1, g.w * g.c * py)) }

    /// The first input row owned by the task that starts at window row `oy`.
    func start(_ oy: Int) -> Int {
        if !disjoint { return oy == 0 ? 0 : g.h }
        return oy == 0 ? 0 : (oy >= g.oh ? g.h : min(g.h, max(0, oy * sy - g.padTop)))
    }
}

/// One task of max-pooling's backward over raw NHWC buffers: for each window,
/// find the first maximum of each channel and route the output gradient there.
private struct MaxPoolGradientStep: @unchecked Sendable {
    let t: MaxPoolGradientTasks
    let xp: UnsafeRawPointer, gp: UnsafeRawPointer, dp: UnsafeMutablePointer<Float>

    init(
        _ t: MaxPoolGradientTasks, x: UnsafeBufferPointer<Float>, outputGradient: UnsafeBufferPointer<Float>,
        dx: UnsafeMutableBufferPointer<Float>
    ) {
        self.t = t
        // Empty buffers have no base address; a task never runs on them.
        xp = UnsafeRawPointer(x.baseAddress ?? UnsafePointer(bitPattern: 16)!)
        gp = UnsafeRawPointer(outputGradient.baseAddress ?? UnsafePointer(bitPattern: 16)!)
        dp = dx.baseAddress ?? UnsafeMutablePointer(bitPattern: 16)!
    }

    @inline(__always)
    func run(_ task: Int) {
        let n = task / t.tasksPerSample
        let oy0 = (task % t.tasksPerSample) * t.rowsPerTask
        if !t.tiled { zeroOwnedRows(n, from: t.start(oy0), to: t.start(oy0 + t.rowsPerTask)) }
        if t.disjoint {
            for ox in 0..<t.g.ow { selectInDisjointWindow(n, oy0, ox) }
        } else {
            for oy in oy0..<(oy0 + t.rowsPerTask) {
                for ox in 0..<t.g.ow { scatterFromOverlappingWindow(n, oy, ox) }
            }
        }
    }

    // MARK: window geometry

    /// Scalar offset of channel 0 of input cell (iy, ix) of sample n.
    @inline(__always) func cell(_ n: Int, _ iy: Int, _ ix: Int) -> Int { ((n * t.g.h + iy) * t.g.w + ix) * t.g.c }

    /// The input rows and columns window (oy, ox) covers (padding clipped), and
    /// the scalar offset of its output cell.
    @inline(__always)
    func window(_ n: Int, _ oy: Int, _ ox: Int) -> (ys: Range<Int>, xr: Range<Int>, out: Int) {
        let y0 = oy * t.sy - t.g.padTop
        let x0 = ox * t.sx - t.g.padLeft
        return (
            max(0, y0)..<min(t.g.h, y0 + t.py), max(0, x0)..<min(t.g.w, x0 + t.px),
            ((n * t.g.oh + oy) * t.g.ow + ox) * t.g.c
        )
    }

    @inline(__always)
    func zeroOwnedRows(_ n: Int, from r0: Int, to r1: Int) {
        let rowScalars = t.g.w * t.g.c
        (dp + (n * t.g.h + r0) * rowScalars).initialize(repeating: 0, count: (r1 - r0) * rowScalars)
    }

    // MARK: the first maximum, 8 channels at a time

    /// For channels k..<k+lanes, the best value's window position (row-major).
    /// Vector selects rather than a scalar loop: the data-dependent branches
    /// of the scalar loop mispredict on every other element. Missing lanes read −∞.
    @inline(__always)
    func firstMaxPositions(_ n: Int, _ ys: Range<Int>, _ xr: Range<Int>, _ k: Int, lanes: Int) -> SIMD8<Int32> {
        var best = SIMD8<Float>(repeating: -.infinity)
        var arg = SIMD8<Int32>(repeating: 0)
        var pos: Int32 = 0
        for iy in ys {
            for ix in xr {
                let base = cell(n, iy, ix) + k
                var v = SIMD8<Float>(repeating: -.infinity)
                if lanes == 8 {
                    v = xp.loadUnaligned(fromByteOffset: base * 4, as: SIMD8<Float>.self)
                } else {
                    for l in 0..<lanes { v[l] = xp.load(fromByteOffset: (base + l) * 4, as: Float.self) }
                }
                // strict '>' keeps the first maximum (position 0 always wins
                // over −∞ unless the input itself is −∞/NaN)
                let better = v .> best
                best.replace(with: v, where: better)
                arg.replace(with: SIMD8(repeating: pos), where: better)
                pos += 1
            }
        }
        return arg
    }

    // MARK: disjoint windows: store, no read-modify-write

    /// Every cell of the window gets the output gradient or 0 — plain stores
    /// with vector selects, no index arithmetic per lane.
    @inline(__always)
    func selectInDisjointWindow(_ n: Int, _ oy: Int, _ ox: Int) {
        let (ys, xr, out) = window(n, oy, ox)
        var k = 0
        while k + 8 <= t.g.c {
            let arg = firstMaxPositions(n, ys, xr, k, lanes: 8)
            let gv = gp.loadUnaligned(fromByteOffset: (out + k) * 4, as: SIMD8<Float>.self)
            var pos: Int32 = 0
            for iy in ys {
                for ix in xr {
                    var v = SIMD8<Float>(repeating: 0)
                    v.replace(with: gv, where: arg .== SIMD8(repeating: pos))
                    UnsafeMutableRawPointer(dp).storeBytes(
                        of: v, toByteOffset: (cell(n, iy, ix) + k) * 4,
                        as: SIMD8<Float>.self)
                    pos += 1
                }
            }
            k += 8
        }
        while k < t.g.c {
            selectScalarChannel(n, ys, xr, out, k)
            k += 1
        }
    }

    /// The channels after the last full 8: zero the window's cells, then store
    /// the gradient at the first maximum.
    @inline(__always)
    func selectScalarChannel(_ n: Int, _ ys: Range<Int>, _ xr: Range<Int>, _ out: Int, _ k: Int) {
        var best = -Float.infinity
        var (by, bx) = (ys.lowerBound, xr.lowerBound)
        for iy in ys {
            for ix in xr {
                let i = cell(n, iy, ix) + k
                let v = xp.load(fromByteOffset: i * 4, as: Float.self)
                if v > best {
                    best = v
                    (by, bx) = (iy, ix)
                }
                dp[i] = 0
            }
        }
        dp[cell(n, by, bx) + k] = gp.load(fromByteOffset: (out + k) * 4, as: Float.self)
    }

    // MARK: overlapping windows: add at the argmax

    /// Windows share cells, so each channel's gradient is added at its first maximum.
    @inline(__always)
    func scatterFromOverlappingWindow(_ n: Int, _ oy: Int, _ ox: Int) {
        let (ys, xr, out) = window(n, oy, ox)
        let w = Int32(xr.count)
        var k = 0
        while k < t.g.c {
            let lanes = min(8, t.g.c - k)
            let arg = firstMaxPositions(n, ys, xr, k, lanes: lanes)
            for l in 0..<lanes {
                let iy = ys.lowerBound + Int(arg[l] / w)
                let ix = xr.lowerBound + Int(arg[l] % w)
                dp[cell(n, iy, ix) + k + l] += gp.load(fromByteOffset: (out + k + l) * 4, as: Float.self)
            }
            k += 8
        }
    }
}
