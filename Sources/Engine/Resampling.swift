import Foundation

/// The interpolations of Keras 3's image resize (`keras.ops.image.resize`, so
/// `Resizing`, `UpSampling2D`, `CenterCrop`), as TensorFlow computes them — not
/// Pillow: half-pixel centres, no antialiasing unless asked.
public enum ResizeInterpolation: String, Sendable, CaseIterable {
    case nearest, bilinear, bicubic, area, lanczos3, lanczos5
}

/// One output index of a resize along one axis: the input indices
/// `start ..< start + weights.count` and their weights.
struct ResampleTaps: Sendable, Equatable {
    var start: Int
    var weights: [Float]
}

/// A resize along one axis, `input` cells to `output` cells: a sparse linear map,
/// so forward applies it and backward applies its transpose. A 2-D resize is
/// two of them, rows then columns.
struct AxisResampling: Sendable, Equatable {
    let input: Int
    let output: Int
    let taps: [ResampleTaps]

    /// Nearest-neighbour repetition by an integer factor (`UpSampling2D`'s
    /// default, `ops.repeat`): output index o reads o / factor.
    init(repeating input: Int, factor: Int) {
        self.input = input
        output = input * factor
        taps = (0..<output).map { ResampleTaps(start: $0 / factor, weights: [1]) }
    }

    /// `tf.image.resize(method:, antialias:)` along one axis, TensorFlow's arithmetic in float32.
    init(input: Int, output: Int, interpolation: ResizeInterpolation, antialias: Bool) {
        self.input = input
        self.output = output
        let scale = Float(input) / Float(output)
        switch (interpolation, antialias) {
        case (.nearest, _):
            taps = (0..<output).map { o in
                let i = Int(((Float(o) + 0.5) * scale).rounded(.down))
                return ResampleTaps(start: max(0, min(i, input - 1)), weights: [1])
            }
        case (.bilinear, false):
            taps = (0..<output).map { o in Self.bilinear(o, scale: scale, input: input) }
        case (.bicubic, false):
            taps = (0..<output).map { o in Self.bicubic(o, scale: scale, input: input) }
        case (.area, _):
            taps = (0..<output).map { o in Self.area(o, scale: scale, input: input) }
        case (.bilinear, true), (.bicubic, true), (.lanczos3, _), (.lanczos5, _):
            let kernel = SamplingKernel(interpolation)
            // scale_and_translate is given output/input as a float32 ratio.
            let inverse = 1 / (Float(output) / Float(input))
            taps = (0..<output).map { o in Self.kernelTaps(o, inverse: inverse, input: input, kernel: kernel, antialias: antialias) }
        }
    }

    /// TensorFlow's `resize_bilinear(half_pixel_centers=True)`.
    private static func bilinear(_ o: Int, scale: Float, input: Int) -> ResampleTaps {
        let at = (Float(o) + 0.5) * scale - 0.5
        let floorAt = at.rounded(.down)
        let lower = max(Int(floorAt), 0)
        let upper = min(Int(at.rounded(.up)), input - 1)
        let lerp = at - floorAt
        if lower == upper { return ResampleTaps(start: lower, weights: [1]) }
        return ResampleTaps(start: lower, weights: [1 - lerp, lerp])
    }

    /// Keys' cubic (a = −0.5) from TensorFlow's 1024-entry table, taps outside the
    /// input dropped and the rest renormalised (`resize_bicubic(half_pixel_centers=True)`).
    private static func bicubic(_ o: Int, scale: Float, input: Int) -> ResampleTaps {
        let at = (Float(o) + 0.5) * scale - 0.5
        let base = Int(at.rounded(.down))
        let offset = Int(((at - at.rounded(.down)) * Float(keysTableSize)).rounded(.toNearestOrEven))
        let table = keysTable
        let raw: [Float] = [
            table[offset * 2 + 1], table[offset * 2], table[(keysTableSize - offset) * 2],
            table[(keysTableSize - offset) * 2 + 1],
        ]
        var weights = [Float](repeating: 0, count: 4)
        var start = Int.max
        var end = Int.min
        for (k, w) in raw.enumerated() where (0..<input).contains(base - 1 + k) {
            weights[k] = w
            start = min(start, base - 1 + k)
            end = max(end, base - 1 + k)
        }
        let sum = weights.reduce(0, +)
        if abs(sum) >= 1000 * Float.leastNormalMagnitude { weights = weights.map { $0 * (1 / sum) } }
        let first = start - (base - 1)
        return ResampleTaps(start: start, weights: Array(weights[first...(end - (base - 1))]))
    }

    private static let keysTableSize = 1024
    private static let keysTable: [Float] = {
        let a: Float = -0.5
        var t = [Float](repeating: 0, count: (keysTableSize + 1) * 2)
        for i in 0...keysTableSize {
            var x = Float(Double(i) * 1.0 / Double(keysTableSize))
            t[i * 2] = ((a + 2) * x - (a + 3)) * x * x + 1
            x += 1
            t[i * 2 + 1] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        }
        return t
    }()

    /// TensorFlow's `resize_area`: each output cell averages the input cells it covers, by coverage.
    private static func area(_ o: Int, scale: Float, input: Int) -> ResampleTaps {
        let from = Float(o) * scale
        let to = Float(o + 1) * scale
        let start = Int(from.rounded(.down))
        let end = Int(to.rounded(.up))
        var weights: [Float] = []
        for i in start..<end {
            let cover: Float
            if Float(i) < from {
                cover = Float(i + 1) > to ? scale : Float(i + 1) - from
            } else {
                cover = Float(i + 1) > to ? to - Float(i) : 1
            }
            weights.append(cover / scale)
        }
        // Indices past the end read the last cell (TensorFlow bounds them).
        var merged = [Float](repeating: 0, count: min(end, input) - start)
        for (k, w) in weights.enumerated() { merged[min(start + k, input - 1) - start] += w }
        return ResampleTaps(start: start, weights: merged)
    }

    /// TensorFlow's `scale_and_translate` (translation 0) with a sampling kernel.
    private static func kernelTaps(_ o: Int, inverse: Float, input: Int, kernel: SamplingKernel, antialias: Bool)
        -> ResampleTaps
    {
        let kernelScale: Float = antialias ? max(inverse, 1) : 1
        let sample = (Float(o) + 0.5) * inverse
        guard sample >= 0, sample <= Float(input) else { return ResampleTaps(start: 0, weights: []) }
        let reach = kernel.radius * kernelScale
        let start = max(0, min(Int((sample - reach - 0.5).rounded(.up)), input - 1))
        let end = max(0, min(Int((sample + reach - 0.5).rounded(.down)), input - 1)) + 1
        var weights = (start..<end).map { s in kernel(abs((Float(s) + 0.5 - sample) * (1 / kernelScale))) }
        let sum = weights.reduce(0, +)
        if abs(sum) >= 1000 * Float.leastNormalMagnitude { weights = weights.map { $0 * (1 / sum) } }
        return ResampleTaps(start: start, weights: weights)
    }

    // MARK: applying it to NHWC maps

    /// Resamples the middle axis of `[outer, input, inner]` (rows of an NHWC map: outer = n,
    /// inner = w · c; columns: outer = n · h, inner = c); `transposed`: the transposed map,
    /// `[outer, output, inner]` back to `[outer, input, inner]` (the backward pass).
    func apply(_ x: [Float], outer: Int, inner: Int, transposed: Bool = false) -> [Float] {
        let (from, to) = transposed ? (output, input) : (input, output)
        var y = [Float](repeating: 0, count: outer * to * inner)
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                for b in 0..<outer {
                    for (o, t) in taps.enumerated() {
                        for (k, w) in t.weights.enumerated() where w != 0 {
                            let (i, j) = transposed ? (o, t.start + k) : (t.start + k, o)
                            let src = xs.baseAddress! + (b * from + i) * inner
                            let dst = ys.baseAddress! + (b * to + j) * inner
                            for e in 0..<inner { dst[e] += w * src[e] }
                        }
                    }
                }
            }
        }
        return y
    }
}

/// The kernels of TensorFlow's `scale_and_translate` that Keras' interpolations name.
struct SamplingKernel: Sendable {
    enum Shape: Sendable { case triangle, keysCubic, lanczos(Float) }
    let shape: Shape

    init(_ interpolation: ResizeInterpolation) {
        switch interpolation {
        case .bicubic: shape = .keysCubic
        case .lanczos3: shape = .lanczos(3)
        case .lanczos5: shape = .lanczos(5)
        default: shape = .triangle
        }
    }

    var radius: Float {
        switch shape {
        case .triangle: return 1
        case .keysCubic: return 2
        case .lanczos(let r): return r
        }
    }

    func callAsFunction(_ x: Float) -> Float {
        let x = abs(x)
        switch shape {
        case .triangle:
            return x < 1 ? 1 - x : 0
        case .keysCubic:
            if x >= 2 { return 0 }
            if x >= 1 { return ((-0.5 * x + 2.5) * x - 4) * x + 2 }
            return (1.5 * x - 2.5) * x * x + 1
        case .lanczos(let r):
            if x > r { return 0 }
            if x <= 1e-3 { return 1 }
            let pi: Float = 3.14159265359879
            return r * sin(pi * x) * sin(pi * x / r) / (pi * pi * x * x)
        }
    }
}
