import Engine
import Foundation

/// lucid's `standard_transforms` (lucid/optvis/transform.py): each step the image
/// is padded, jittered, rescaled, rotated and jittered again before the network
/// sees it, so the optimisation cannot rely on pixel-exact high-frequency patterns.
///
/// Here the whole chain is one affine map from network-input pixels to image
/// pixels, sampled once bilinearly (lucid resamples at the scale and at the
/// rotation). Everything outside the image is the padding — a constant (lucid:
/// 0.5) or the mirrored image. Finally the result is centre-cropped (or padded)
/// to the size the network needs.
public struct LucidTransforms: Sendable, Equatable {
    public enum PadMode: Sendable, Equatable {
        /// A constant value in [0, 1] RGB (no gradient flows into it).
        case constant(Float)
        /// Mirror the image at its border without repeating the edge pixel (`tf.pad` REFLECT).
        case reflect
    }

    public var pad: Int
    public var padMode: PadMode
    /// First jitter: a random crop that removes this many pixels per axis.
    public var jitter1: Int
    /// One scale factor is drawn uniformly from this list each step.
    public var scales: [Double]
    /// One angle (degrees) is drawn uniformly from this list each step.
    public var anglesDegrees: [Double]
    /// Second jitter.
    public var jitter2: Int

    public init(pad: Int, padMode: PadMode, jitter1: Int, scales: [Double], anglesDegrees: [Double], jitter2: Int) {
        self.pad = pad
        self.padMode = padMode
        self.jitter1 = jitter1
        self.scales = scales
        self.anglesDegrees = anglesDegrees
        self.jitter2 = jitter2
    }

    /// pad 12 (constant 0.5), jitter 8, scale ∈ {1, 0.975, 1.025, 0.95, 1.05},
    /// rotate ∈ {−5, …, 5}°, jitter 4.
    public static let standard = LucidTransforms(
        pad: 12, padMode: .constant(0.5), jitter1: 8, scales: [1, 0.975, 1.025, 0.95, 1.05],
        anglesDegrees: (-5...5).map(Double.init), jitter2: 4)

    /// No transformation: the network sees the (centre-cropped or padded) image itself.
    public static let none = LucidTransforms(
        pad: 0, padMode: .constant(0.5), jitter1: 0, scales: [1],
        anglesDegrees: [0], jitter2: 0)

    /// Draws this step's transform for one image.
    public func draw(
        imageHeight h: Int, imageWidth w: Int, outputHeight oh: Int, outputWidth ow: Int,
        using rng: inout SplitMix64
    ) -> LucidWarp {
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        func offset(_ j: Int) -> Int { j > 0 ? Int(rng.next() % UInt64(j + 1)) : 0 }
        let o1y = offset(jitter1)
        let o1x = offset(jitter1)
        let s = scales.isEmpty ? 1 : pick(scales)
        let deg = anglesDegrees.isEmpty ? 0 : pick(anglesDegrees)
        let o2y = offset(jitter2)
        let o2x = offset(jitter2)
        // Sizes after pad and first crop, after scaling (truncated, as lucid's int cast).
        let c1h = Double(h + 2 * pad - jitter1)
        let c1w = Double(w + 2 * pad - jitter1)
        let sh = max(1, Int(c1h * s))
        let sw = max(1, Int(c1w * s))
        // Centre crop (or pad) of the second crop to the output size.
        let cy = Int((Double(sh - jitter2 - oh) / 2).rounded(.down))
        let cx = Int((Double(sw - jitter2 - ow) / 2).rounded(.down))
        // Output (y, x) → rotated image (r) → scaled image (q, inverse rotation about
        // its centre) → first crop (u, half-pixel scaling) → padded → image.
        let th = deg * Double.pi / 180
        let ct = cos(th)
        let st = sin(th)
        let ry0 = Double(cy + o2y)
        let rx0 = Double(cx + o2x)
        let my = Double(sh - 1) / 2
        let mx = Double(sw - 1) / 2
        let fy = c1h / Double(sh)
        let fx = c1w / Double(sw)
        // q = m + R(r − m); u = (q + 0.5)·f − 0.5; src = u + o1 − pad. All affine in (y, x).
        // src_y = a·y + b·x + c, src_x = d·y + e·x + f.
        let a = fy * ct
        let b = -fy * st
        let d = fx * st
        let e = fx * ct
        let qy0 = my + ct * (ry0 - my) - st * (rx0 - mx)
        let qx0 = mx + st * (ry0 - my) + ct * (rx0 - mx)
        let c = (qy0 + 0.5) * fy - 0.5 + Double(o1y - pad)
        let f = (qx0 + 0.5) * fx - 0.5 + Double(o1x - pad)
        return LucidWarp(
            imageHeight: h, imageWidth: w, outputHeight: oh, outputWidth: ow,
            matrix: [a, b, c, d, e, f], padMode: padMode)
    }
}

/// One bilinear resampling: output pixel (y, x) reads the image at
/// (a·y + b·x + c, d·y + e·x + f), with `padMode` outside the image.
/// `apply` is affine in the image; `adjoint` is the transpose of its linear part
/// (a scatter of the output gradient onto the image pixels).
public struct LucidWarp: Sendable {
    public let imageHeight: Int
    public let imageWidth: Int
    public let outputHeight: Int
    public let outputWidth: Int
    public let matrix: [Double]
    public let padMode: LucidTransforms.PadMode
    // Per output pixel, 4 taps: image pixel index (−1: the constant pad) and weight.
    private let taps: [Int32]
    private let weights: [Float]

    public init(
        imageHeight: Int, imageWidth: Int, outputHeight: Int, outputWidth: Int,
        matrix: [Double], padMode: LucidTransforms.PadMode
    ) {
        precondition(matrix.count == 6)
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        self.outputHeight = outputHeight
        self.outputWidth = outputWidth
        self.matrix = matrix
        self.padMode = padMode
        let n = outputHeight * outputWidth
        var taps = [Int32](repeating: -1, count: 4 * n)
        var weights = [Float](repeating: 0, count: 4 * n)
        let reflect = padMode == .reflect
        func index(_ i: Int, _ size: Int) -> Int {
            if i >= 0 && i < size { return i }
            if !reflect { return -1 }
            if size == 1 { return 0 }
            let period = 2 * (size - 1)
            var m = i % period
            if m < 0 { m += period }
            return m < size ? m : period - m
        }
        for y in 0..<outputHeight {
            for x in 0..<outputWidth {
                let sy = matrix[0] * Double(y) + matrix[1] * Double(x) + matrix[2]
                let sx = matrix[3] * Double(y) + matrix[4] * Double(x) + matrix[5]
                let y0 = Int(sy.rounded(.down))
                let x0 = Int(sx.rounded(.down))
                let wy = Float(sy - Double(y0))
                let wx = Float(sx - Double(x0))
                let p = (y * outputWidth + x) * 4
                let rows = [index(y0, imageHeight), index(y0 + 1, imageHeight)]
                let cols = [index(x0, imageWidth), index(x0 + 1, imageWidth)]
                let wr: [Float] = [1 - wy, wy]
                let wc: [Float] = [1 - wx, wx]
                for i in 0..<2 {
                    for j in 0..<2 {
                        let k = p + i * 2 + j
                        weights[k] = wr[i] * wc[j]
                        taps[k] = (rows[i] < 0 || cols[j] < 0) ? -1 : Int32(rows[i] * imageWidth + cols[j])
                    }
                }
            }
        }
        self.taps = taps
        self.weights = weights
    }

    /// The warped image ([oh, ow, c] from [h, w, c], HWC).
    public func apply(_ image: UnsafeBufferPointer<Float>, channels: Int, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(image.count == imageHeight * imageWidth * channels && out.count == outputHeight * outputWidth * channels)
        let padValue: Float = { if case .constant(let v) = padMode { return v } else { return 0 } }()
        for p in 0..<(outputHeight * outputWidth) {
            for c in 0..<channels {
                var v: Float = 0
                for k in (4 * p)..<(4 * p + 4) {
                    let t = Int(taps[k])
                    v += weights[k] * (t >= 0 ? image[t * channels + c] : padValue)
                }
                out[p * channels + c] = v
            }
        }
    }

    public func apply(_ image: [Float], channels: Int) -> [Float] {
        var out = [Float](repeating: 0, count: outputHeight * outputWidth * channels)
        image.withUnsafeBufferPointer { ip in out.withUnsafeMutableBufferPointer { apply(ip, channels: channels, into: $0) } }
        return out
    }

    /// Adds the transpose of the warp's linear part applied to `gradient` ([oh, ow, c]) to `into` ([h, w, c]).
    public func accumulateAdjoint(_ gradient: UnsafeBufferPointer<Float>, channels: Int, into g: UnsafeMutableBufferPointer<Float>) {
        precondition(gradient.count == outputHeight * outputWidth * channels && g.count == imageHeight * imageWidth * channels)
        for p in 0..<(outputHeight * outputWidth) {
            for k in (4 * p)..<(4 * p + 4) {
                let t = Int(taps[k])
                if t < 0 { continue }
                let w = weights[k]
                for c in 0..<channels { g[t * channels + c] += w * gradient[p * channels + c] }
            }
        }
    }

    public func adjoint(_ gradient: [Float], channels: Int) -> [Float] {
        var g = [Float](repeating: 0, count: imageHeight * imageWidth * channels)
        gradient.withUnsafeBufferPointer { gp in g.withUnsafeMutableBufferPointer { accumulateAdjoint(gp, channels: channels, into: $0) } }
        return g
    }
}
