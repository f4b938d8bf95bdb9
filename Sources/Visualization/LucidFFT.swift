import Engine
import Foundation

/// A 2-D real discrete Fourier transform of one fixed size, as exact DFTs by
/// separable matrix products (the matrices are computed once per size, in Double,
/// then stored as Float).
///
/// Conventions are NumPy's (`np.fft.rfft2` / `np.fft.irfft2(…, s=(h, w))`) and
/// TensorFlow's `tf.signal.rfft2d` / `irfft2d`: the spectrum of an h×w image has
/// h × (w/2 + 1) complex coefficients (rows: all h vertical frequencies, columns:
/// the non-negative horizontal ones); the inverse carries the 1/(h·w) factor.
/// Like those, the inverse ignores the imaginary parts of the kx = 0 column and
/// (even w) of the kx = w/2 column, so it is a real-linear map from the
/// 2·h·(w/2+1) real numbers (re, im) to the h·w pixels. `inverseAdjoint` is its
/// exact transpose — what back-propagation through `inverse` needs.
///
/// Cost per h×w plane: inverse and its adjoint ≈ h·(w/2+1)·(4h + 2w)
/// multiply-adds each (≈ 34 M at 224×224): small next to a CNN's backward pass.
public struct LucidDFT2D: Sendable {
    public let height: Int
    public let width: Int
    /// Columns of the spectrum: w/2 + 1.
    public var frequencyWidth: Int { Self.frequencyWidth(width: width) }

    public static func frequencyWidth(width: Int) -> Int { width / 2 + 1 }

    /// Floats the matrices of an h×w transform hold: two [h, h], six [w, w/2+1].
    static func matrixElements(height: Int, width: Int) -> Int { 2 * height * height + 6 * width * frequencyWidth(width: width) }

    // [h, h], symmetric: cos / sin(2π·ky·y / h).
    private let cosH: [Float]
    private let sinH: [Float]
    // [w, fw]: cos / sin(2π·kx·x / w) (forward transform along x).
    private let cosW: [Float]
    private let sinW: [Float]
    // [fw, w]: c_kx·cos / sin(2π·kx·x / w) / (h·w), c = 1 at kx = 0 and the
    // Nyquist column, else 2 (the inverse along x, folding in the Hermitian half).
    private let invCosW: [Float]
    private let invSinW: [Float]
    // [w, fw]: the transposes of invCosW / invSinW (the adjoint along x).
    private let invCosWT: [Float]
    private let invSinWT: [Float]

    public init(height: Int, width: Int) {
        precondition(height > 0 && width > 0)
        self.height = height
        self.width = width
        let h = height
        let w = width
        let fw = width / 2 + 1
        func angle(_ k: Int, _ x: Int, _ n: Int) -> Double { 2 * Double.pi * Double((k * x) % n) / Double(n) }
        var ch = [Float](repeating: 0, count: h * h)
        var sh = ch
        for a in 0..<h {
            for b in 0..<h {
                let t = angle(a, b, h)
                ch[a * h + b] = Float(cos(t))
                sh[a * h + b] = Float(sin(t))
            }
        }
        var cw = [Float](repeating: 0, count: w * fw)
        var sw = cw
        var icwT = cw
        var iswT = cw
        var icw = [Float](repeating: 0, count: fw * w)
        var isw = icw
        let norm = 1 / Double(h * w)
        for x in 0..<w {
            for k in 0..<fw {
                let t = angle(k, x, w)
                let c: Double = (k == 0 || (w % 2 == 0 && k == w / 2)) ? 1 : 2
                cw[x * fw + k] = Float(cos(t))
                sw[x * fw + k] = Float(sin(t))
                let ic = Float(c * cos(t) * norm)
                let iS = Float(c * sin(t) * norm)
                icw[k * w + x] = ic
                isw[k * w + x] = iS
                icwT[x * fw + k] = ic
                iswT[x * fw + k] = iS
            }
        }
        cosH = ch
        sinH = sh
        cosW = cw
        sinW = sw
        invCosW = icw
        invSinW = isw
        invCosWT = icwT
        invSinWT = iswT
    }

    /// rfft2 of one h×w plane (row-major): (re, im), each h × (w/2+1).
    public func forward(_ image: [Float]) -> (re: [Float], im: [Float]) {
        let h = height
        let w = width
        let fw = frequencyWidth
        precondition(image.count == h * w)
        var ur = [Float](repeating: 0, count: h * fw)
        var ui = ur
        var xr = ur
        var xi = ur
        // Along x: U = Σx img·e^{−iθ}: ur = img·cosW, ui = −img·sinW.
        lucidGEMM(h, fw, w, image, cosW, &ur, alpha: 1)
        lucidGEMM(h, fw, w, image, sinW, &ui, alpha: -1)
        // Along y: X = Σy e^{−iφ}·U: xr = C·ur + S·ui, xi = C·ui − S·ur.
        lucidGEMM(h, fw, h, cosH, ur, &xr, alpha: 1)
        lucidGEMM(h, fw, h, sinH, ui, &xr, alpha: 1, accumulate: true)
        lucidGEMM(h, fw, h, cosH, ui, &xi, alpha: 1)
        lucidGEMM(h, fw, h, sinH, ur, &xi, alpha: -1, accumulate: true)
        return (xr, xi)
    }

    /// irfft2 of one spectrum (re, im; each h × (w/2+1)) to an h×w plane.
    public func inverse(re: [Float], im: [Float]) -> [Float] {
        let h = height
        let w = width
        let fw = frequencyWidth
        precondition(re.count == h * fw && im.count == h * fw)
        var zr = [Float](repeating: 0, count: h * fw)
        var zi = zr
        // Along y (full complex inverse, unnormalised): Z = Σky e^{+iφ}·X.
        lucidGEMM(h, fw, h, cosH, re, &zr, alpha: 1)
        lucidGEMM(h, fw, h, sinH, im, &zr, alpha: -1, accumulate: true)
        lucidGEMM(h, fw, h, sinH, re, &zi, alpha: 1)
        lucidGEMM(h, fw, h, cosH, im, &zi, alpha: 1, accumulate: true)
        // Along x (real output): img = Re Σkx c·Z·e^{+iθ}/(hw) = zr·invCos − zi·invSin.
        var out = [Float](repeating: 0, count: h * w)
        lucidGEMM(h, w, fw, zr, invCosW, &out, alpha: 1)
        lucidGEMM(h, w, fw, zi, invSinW, &out, alpha: -1, accumulate: true)
        return out
    }

    /// The transpose of `inverse`: given dL/d(image), dL/d(re) and dL/d(im).
    public func inverseAdjoint(_ gradient: [Float]) -> (re: [Float], im: [Float]) {
        let h = height
        let w = width
        let fw = frequencyWidth
        precondition(gradient.count == h * w)
        var gzr = [Float](repeating: 0, count: h * fw)
        var gzi = gzr
        var gr = gzr
        var gi = gzr
        lucidGEMM(h, fw, w, gradient, invCosWT, &gzr, alpha: 1)
        lucidGEMM(h, fw, w, gradient, invSinWT, &gzi, alpha: -1)
        // cosH and sinH are symmetric, so they are their own transposes.
        lucidGEMM(h, fw, h, cosH, gzr, &gr, alpha: 1)
        lucidGEMM(h, fw, h, sinH, gzi, &gr, alpha: 1, accumulate: true)
        lucidGEMM(h, fw, h, sinH, gzr, &gi, alpha: -1)
        lucidGEMM(h, fw, h, cosH, gzi, &gi, alpha: 1, accumulate: true)
        return (gr, gi)
    }

    /// lucid's `rfft2d_freqs`: |f| = sqrt(fy² + fx²) per coefficient, fy from
    /// `np.fft.fftfreq(h)` (negative in the upper half), fx = kx / w.
    public func frequencies() -> [Float] {
        let h = height
        let w = width
        let fw = frequencyWidth
        var f = [Float](repeating: 0, count: h * fw)
        for ky in 0..<h {
            let fy = Double(ky < (h + 1) / 2 ? ky : ky - h) / Double(h)
            for kx in 0..<fw {
                let fx = Double(kx) / Double(w)
                f[ky * fw + kx] = Float((fx * fx + fy * fy).squareRoot())
            }
        }
        return f
    }
}

/// c[m×n] (=|+=) alpha · a[m×k] · b[k×n], row-major, on the engine's sgemm.
func lucidGEMM(
    _ m: Int, _ n: Int, _ k: Int, _ a: [Float], _ b: [Float], _ c: inout [Float],
    alpha: Float, accumulate: Bool = false
) {
    precondition(a.count >= m * k && b.count >= k * n && c.count >= m * n)
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                matrixMultiply(m, n, k, alpha: alpha, ap.baseAddress!, bp.baseAddress!, beta: accumulate ? 1 : 0, cp.baseAddress!)
            }
        }
    }
}
