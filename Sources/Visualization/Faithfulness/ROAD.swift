import Engine
import Foundation
import Synchronization

/// ROAD, Remove And Debias (Rong et al. 2022): removing pixels by painting them a constant
/// colour tells the model where they were (the shape of the hole leaks the map), so removed
/// pixels are imputed from their neighbours instead — noisy linear imputation: every removed
/// pixel equals the weighted mean of its eight neighbours (1/6 for the four direct ones,
/// 1/12 for the diagonals; weights of neighbours outside the image dropped), a sparse linear
/// system per channel whose known values come from the kept pixels, plus a little noise.
/// The system is symmetric positive definite whenever a pixel is kept, and is solved here
/// by conjugate gradients preconditioned by multigrid (ROAD's code uses a direct solver;
/// the residual bound below makes the two agree far inside float32).
extension Network {
    /// Mean score change (after − before) over `options.roadFractions`, removing the most
    /// relevant pixels first (MoRF: saliency ≥ its (1 − f) quantile) and the least relevant
    /// first (LeRF: saliency ≤ its f quantile), as pytorch-grad-cam's ROAD metrics.
    func roadScores(_ x: Tensor, saliency: [Float], scorer: BatchScorer, options: FaithfulnessOptions) throws
        -> (morf: Double, lerf: Double)
    {
        let fractions = options.roadFractions
        guard !fractions.isEmpty, fractions.allSatisfy({ $0 > 0 && $0 < 1 }) else {
            throw VisualizationError.invalid("ROAD fractions must lie in (0, 1)")
        }
        let lo = Double(x.scalars.min() ?? 0)
        let hi = Double(x.scalars.max() ?? 0)
        let sigma = options.roadNoise * (hi - lo)
        let masks =
            fractions.map { f in
                let top = linearPercentile(saliency, 100 * (1 - f))
                return saliency.map { Double($0) >= top }
            }
            + fractions.map { f in
                let bottom = linearPercentile(saliency, 100 * f)
                return saliency.map { Double($0) <= bottom }
            }
        // The systems are independent: solved on every core, then the noise is added in a
        // fixed order (image by image, channel by channel), so the result does not depend on
        // the scheduling.
        let fills = Mutex([[[Double]]](repeating: [], count: masks.count))
        DispatchQueue.concurrentPerform(iterations: masks.count) { m in
            let fill = linearFill(x, removing: masks[m])
            fills.withLock { $0[m] = fill }
        }
        var noise = SeededNormal(seed: options.seed)
        var images = [x]
        for (m, fill) in fills.withLock({ $0 }).enumerated() {
            images.append(withNoise(x, removing: masks[m], fill: fill, sigma: sigma, normals: &noise))
        }
        let s = try scorer.scores(of: images)
        let before = s[0]
        let n = fractions.count
        let morf = s[1...n].reduce(0) { $0 + ($1 - before) } / Double(n)
        let lerf = s[(n + 1)...(2 * n)].reduce(0) { $0 + ($1 - before) } / Double(n)
        return (morf, lerf)
    }
}

/// NumPy's default (`linear`) percentile: q in [0, 100] between the sorted values.
func linearPercentile(_ values: [Float], _ q: Double) -> Double {
    let v = values.map(Double.init).sorted()
    guard v.count > 1 else { return v.first ?? 0 }
    let position = q / 100 * Double(v.count - 1)
    let below = min(v.count - 2, Int(position.rounded(.down)))
    let t = position - Double(below)
    return v[below] + (v[below + 1] - v[below]) * t
}

/// `x` with the pixels flagged in `removing` replaced by noisy linear imputation. Noise is
/// drawn channel by channel over the removed pixels in index order. When every pixel is
/// removed there is nothing to impute from: they become 0 plus the noise.
func imputed(_ x: Tensor, removing: [Bool], noise sigma: Double, normals: inout SeededNormal) -> Tensor {
    withNoise(x, removing: removing, fill: linearFill(x, removing: removing), sigma: sigma, normals: &normals)
}

/// The noise-free imputed values, per channel, of the removed pixels in index order.
func linearFill(_ x: Tensor, removing: [Bool]) -> [[Double]] {
    let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
    let unknown = removing.indices.filter { removing[$0] }
    guard !unknown.isEmpty else { return Array(repeating: [], count: c) }
    var slot = [Int](repeating: -1, count: h * w)
    for (i, p) in unknown.enumerated() { slot[p] = i }
    let system = ImputationSystem(unknown: unknown, slot: slot, width: w, height: h)
    let values = x.scalars
    return (0..<c).map { k in system.solve(system.rightHandSide { values[$0 * c + k] }) }
}

func withNoise(_ x: Tensor, removing: [Bool], fill: [[Double]], sigma: Double, normals: inout SeededNormal) -> Tensor {
    let c = x.shape[3]
    let unknown = removing.indices.filter { removing[$0] }
    var out = x
    for k in 0..<c {
        for (i, p) in unknown.enumerated() { out.scalars[p * c + k] = Float(fill[k][i] + sigma * normals.next()) }
    }
    return out
}

/// The imputation system M x = b over the removed pixels: M = diag(s) − W, s_i the summed
/// weights of pixel i's neighbours inside the image, W the weights between removed pixels;
/// b the weighted kept neighbours. A 224² image with 90 % removed is 45,000 unknowns; plain
/// conjugate gradients needed 300–600 iterations on such systems (their condition grows with
/// the width of the removed regions), preconditioned by a multigrid V-cycle under 30.
struct ImputationSystem {
    static let neighbours: [(dy: Int, dx: Int, weight: Double)] = [
        (1, 1, 1.0 / 12), (0, 1, 1.0 / 6), (-1, 1, 1.0 / 12), (1, -1, 1.0 / 12),
        (0, -1, 1.0 / 6), (-1, -1, 1.0 / 12), (1, 0, 1.0 / 6), (-1, 0, 1.0 / 6),
    ]

    let matrix: SymmetricSparseMatrix
    /// Row i's kept neighbours, by pixel index: keptPixels/keptWeights[keptStart[i] ..< keptStart[i + 1]].
    private var keptStart: [Int] = [0]
    private var keptPixels: [Int] = []
    private var keptWeights: [Double] = []
    private let preconditioner: AggregationMultigrid

    init(unknown: [Int], slot: [Int], width w: Int, height h: Int) {
        var matrix = SymmetricSparseMatrix(diagonal: [], rowStart: [0], columns: [], weights: [])
        for p in unknown {
            let (y, x) = (p / w, p % w)
            var sum = 0.0
            for n in Self.neighbours {
                let (ny, nx) = (y + n.dy, x + n.dx)
                guard ny >= 0, ny < h, nx >= 0, nx < w else { continue }
                sum += n.weight
                let q = ny * w + nx
                if slot[q] >= 0 {
                    matrix.columns.append(Int32(slot[q]))
                    matrix.weights.append(n.weight)
                } else {
                    keptPixels.append(q)
                    keptWeights.append(n.weight)
                }
            }
            matrix.rowStart.append(matrix.columns.count)
            keptStart.append(keptPixels.count)
            matrix.diagonal.append(sum)
        }
        self.matrix = matrix
        preconditioner = AggregationMultigrid(
            matrix, rows: unknown.map { Int32($0 / w) }, cols: unknown.map { Int32($0 % w) })
    }

    func rightHandSide(_ value: (Int) -> Float) -> [Double] {
        (0..<matrix.count).map { i in
            var b = 0.0
            for e in keptStart[i]..<keptStart[i + 1] { b += keptWeights[e] * Double(value(keptPixels[e])) }
            return b
        }
    }

    func solve(_ b: [Double]) -> [Double] { solveCounting(b).x }

    /// Multigrid-preconditioned conjugate gradients to a relative residual of 1e-7 (imputed
    /// values to ~1e-6 of the image's range: far below what a float32 input resolves), and
    /// the iterations it took.
    func solveCounting(_ b: [Double]) -> (x: [Double], iterations: Int) {
        let n = b.count
        var x = [Double](repeating: 0, count: n)
        let bNorm = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard bNorm > 0 else { return (x, 0) }
        var r = b
        var z = preconditioner.apply(r)
        var p = z
        var ap = [Double](repeating: 0, count: n)
        var rz = zip(r, z).reduce(0) { $0 + $1.0 * $1.1 }
        for iteration in 1...(10 * n + 100) {
            p.withUnsafeBufferPointer { pb in ap.withUnsafeMutableBufferPointer { matrix.multiply(pb, into: $0) } }
            var pap = 0.0
            for i in 0..<n { pap += p[i] * ap[i] }
            let alpha = rz / pap
            var rr = 0.0
            for i in 0..<n {
                x[i] += alpha * p[i]
                r[i] -= alpha * ap[i]
                rr += r[i] * r[i]
            }
            if rr.squareRoot() <= 1e-7 * bNorm { return (x, iteration) }
            z = preconditioner.apply(r)
            var next = 0.0
            for i in 0..<n { next += r[i] * z[i] }
            let beta = next / rz
            rz = next
            for i in 0..<n { p[i] = z[i] + beta * p[i] }
        }
        return (x, 10 * n + 100)
    }
}
