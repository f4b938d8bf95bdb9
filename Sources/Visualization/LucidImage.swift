import Engine
import Foundation
import Imaging

// The image parameterisation of lucid (tensorflow/lucid, lucid/optvis/param/
// spatial.py `fft_image`, color.py `to_valid_rgb`), re-implemented:
//
//   coefficients (2 × 3 × h × (w/2+1) reals: re, im per colour channel)
//     → × sqrt(h·w) / max(|f|, 1/max(h, w))^decay          (low frequencies dominate)
//     → irfft2 per channel, / 4                               (a "decorrelated" image t)
//     → t · C̃ᵀ per pixel, C̃ = ImageNet colour-correlation sqrt / its max column norm
//     → sigmoid                                               (RGB in [0, 1])

/// lucid's `color_correlation_svd_sqrt` (ImageNet), rows = RGB output.
public let lucidColorCorrelationSVDSqrt: [[Float]] = [
    [0.26, 0.09, 0.02],
    [0.27, 0.00, -0.05],
    [0.27, -0.09, 0.03],
]

/// The colour matrix lucid applies: `color_correlation_svd_sqrt / max column norm` (row-major 3×3).
public let lucidColorMatrix: [Float] = {
    let m = lucidColorCorrelationSVDSqrt
    var maxNorm: Float = 0
    for j in 0..<3 { maxNorm = max(maxNorm, (0..<3).reduce(Float(0)) { $0 + m[$1][j] * m[$1][j] }.squareRoot()) }
    return (0..<9).map { m[$0 / 3][$0 % 3] / maxNorm }
}()

/// rgb = C̃ · t for each pixel of an HWC (3-channel) buffer.
public func lucidDecorrelate(_ t: [Float]) -> [Float] {
    let c = lucidColorMatrix
    var out = [Float](repeating: 0, count: t.count)
    for p in stride(from: 0, to: t.count, by: 3) {
        for r in 0..<3 { out[p + r] = c[r * 3] * t[p] + c[r * 3 + 1] * t[p + 1] + c[r * 3 + 2] * t[p + 2] }
    }
    return out
}

/// The transpose: g_t = C̃ᵀ · g_rgb per pixel (the gradient through `lucidDecorrelate`).
public func lucidDecorrelateAdjoint(_ g: [Float]) -> [Float] {
    let c = lucidColorMatrix
    var out = [Float](repeating: 0, count: g.count)
    for p in stride(from: 0, to: g.count, by: 3) {
        for j in 0..<3 { out[p + j] = c[j] * g[p] + c[3 + j] * g[p + 1] + c[6 + j] * g[p + 2] }
    }
    return out
}

/// The inverse of `lucidDecorrelate` (t = C̃⁻¹ · rgb), e.g. to start from a given image.
public func lucidCorrelate(_ rgb: [Float]) -> [Float] {
    let m = lucidColorMatrix.map(Double.init)
    let det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6])
    let inv: [Double] = [
        (m[4] * m[8] - m[5] * m[7]), -(m[1] * m[8] - m[2] * m[7]), (m[1] * m[5] - m[2] * m[4]),
        -(m[3] * m[8] - m[5] * m[6]), (m[0] * m[8] - m[2] * m[6]), -(m[0] * m[5] - m[2] * m[3]),
        (m[3] * m[7] - m[4] * m[6]), -(m[0] * m[7] - m[1] * m[6]), (m[0] * m[4] - m[1] * m[3]),
    ].map { $0 / det }
    var out = [Float](repeating: 0, count: rgb.count)
    for p in stride(from: 0, to: rgb.count, by: 3) {
        for r in 0..<3 {
            out[p + r] = Float(inv[r * 3] * Double(rgb[p]) + inv[r * 3 + 1] * Double(rgb[p + 1]) + inv[r * 3 + 2] * Double(rgb[p + 2]))
        }
    }
    return out
}

/// How an RGB image in [0, 1] becomes the model's input: optionally reorder to BGR,
/// then `input[k] = x[k] · scale[k] + offset[k]` per channel (in the model's order).
/// Every Keras preprocessing mode is of this form.
public struct LucidInputMap: Sendable, Equatable {
    public var scale: [Float]
    public var offset: [Float]
    public var swapRGBToBGR: Bool

    public init(scale: [Float], offset: [Float], swapRGBToBGR: Bool = false) {
        precondition(scale.count == 3 && offset.count == 3)
        self.scale = scale
        self.offset = offset
        self.swapRGBToBGR = swapRGBToBGR
    }

    /// The same affine map on every channel (e.g. `×255`: `uniform(scale: 255, offset: 0)`).
    public static func uniform(scale: Float, offset: Float = 0) -> LucidInputMap {
        LucidInputMap(scale: [scale, scale, scale], offset: [offset, offset, offset])
    }

    /// Pixels ×255, then the model's preprocessing.
    public init(preprocessing: Preprocessing) {
        switch preprocessing {
        case .caffe:
            let m = Preprocessing.caffeMeanBGR
            self.init(scale: [255, 255, 255], offset: [-m[0], -m[1], -m[2]], swapRGBToBGR: true)
        case .tf: self = .uniform(scale: 2, offset: -1)
        case .torch:
            let m = Preprocessing.torchMean
            let s = Preprocessing.torchStd
            self.init(scale: (0..<3).map { 1 / s[$0] }, offset: (0..<3).map { -m[$0] / s[$0] })
        case .scale: self = .uniform(scale: 1)
        case .none: self = .uniform(scale: 255)
        case .affine(let s, let o): self = .uniform(scale: 255 * s, offset: o)
        }
    }

    /// Source RGB channel of model channel k.
    @inline(__always) func source(_ k: Int) -> Int { swapRGBToBGR ? 2 - k : k }
}

/// A batch of lucid images as RGB in [0, 1], [n, h, w, 3], converted to 8 bits
/// (round to nearest), one `Image` per sample.
public func lucidImages(_ images: Tensor) throws -> [Image] {
    precondition(images.rank == 4 && images.shape[3] == 3)
    let (h, w) = (images.shape[1], images.shape[2])
    return try (0..<images.batch).map { n in
        let s = images.sampleCount
        let px = images.scalars[(n * s)..<((n + 1) * s)].map { v -> UInt8 in
            UInt8(min(max((v * 255).rounded(), 0), 255))
        }
        return try Image(width: w, height: h, channels: 3, pixels: px)
    }
}

/// lucid's Fourier image of one size: coefficients ↔ RGB in [0, 1], and the
/// gradient back to the coefficients. Coefficients are laid out as lucid's
/// `(2, 3, h, w/2+1)`: real parts of the three channels, then imaginary parts.
public struct LucidFourierImage: Sendable {
    public let height: Int
    public let width: Int
    public let decorrelateColour: Bool
    public let dft: LucidDFT2D
    /// sqrt(h·w) / max(|f|, 1/max(h, w))^decay per coefficient, [h, w/2+1].
    public let spectrumScale: [Float]
    public var plane: Int { height * dft.frequencyWidth }
    public var coefficientCount: Int { Self.coefficientCount(height: height, width: width) }

    /// Real coefficients of an h×w image: re and im of three channels' h × (w/2+1) spectra.
    public static func coefficientCount(height: Int, width: Int) -> Int { 6 * height * LucidDFT2D.frequencyWidth(width: width) }

    public init(height: Int, width: Int, decayPower: Float = 1, decorrelateColour: Bool = true) {
        self.height = height
        self.width = width
        self.decorrelateColour = decorrelateColour
        dft = LucidDFT2D(height: height, width: width)
        let floor = 1 / Double(max(height, width))
        let root = Double(height * width).squareRoot()
        spectrumScale = dft.frequencies().map { f in Float(root / pow(max(Double(f), floor), Double(decayPower))) }
    }

    /// RGB in [0, 1], [h, w, 3].
    public func rgb(_ coefficients: [Float]) -> [Float] {
        precondition(coefficients.count == coefficientCount)
        let (h, w, plane) = (height, width, plane)
        var t = [Float](repeating: 0, count: h * w * 3)
        for ch in 0..<3 {
            let re = (0..<plane).map { coefficients[ch * plane + $0] * spectrumScale[$0] }
            let im = (0..<plane).map { coefficients[(3 + ch) * plane + $0] * spectrumScale[$0] }
            let img = dft.inverse(re: re, im: im)
            for p in 0..<(h * w) { t[p * 3 + ch] = img[p] / 4 }
        }
        let d = decorrelateColour ? lucidDecorrelate(t) : t
        return d.map { 1 / (1 + exp(-$0)) }
    }

    /// d L / d coefficients from d L / d rgb, given the `rgb` those coefficients made.
    public func gradient(rgb: [Float], rgbGradient: [Float]) -> [Float] {
        precondition(rgb.count == height * width * 3 && rgbGradient.count == rgb.count)
        let (h, w, plane) = (height, width, plane)
        var g = rgbGradient
        for p in 0..<g.count {
            let y = rgb[p]
            g[p] *= y * (1 - y)
        }
        let gT = decorrelateColour ? lucidDecorrelateAdjoint(g) : g
        var grad = [Float](repeating: 0, count: coefficientCount)
        for ch in 0..<3 {
            let gp = (0..<(h * w)).map { gT[$0 * 3 + ch] / 4 }
            let (gr, gi) = dft.inverseAdjoint(gp)
            for q in 0..<plane {
                grad[ch * plane + q] = gr[q] * spectrumScale[q]
                grad[(3 + ch) * plane + q] = gi[q] * spectrumScale[q]
            }
        }
        return grad
    }
}
