import Engine

extension Network {
    /// Eigen-CAM (Muhammad & Yeasin 2020), pytorch-grad-cam's convention
    /// (`get_2d_projection`): the activations as an (H·W) × C matrix X, each channel
    /// **mean-centred over the positions**, projected on their first principal
    /// component v₁ (the top right-singular vector): p = X v₁. The sign of a singular
    /// vector is arbitrary; we choose it so that p correlates positively with the
    /// channel sum Σ_c A (uncentred). map = ReLU(p) / max. (pytorch-grad-cam then
    /// min-max scales; a centred p has mean 0, so after the ReLU its min is 0 and the
    /// two agree.) Class-agnostic: `classIndex`/`score` only report the top (or requested) class.
    ///
    /// v₁ comes from the smaller Gram matrix (XᵀX, C × C, or XXᵀ, HW × HW, whose top
    /// eigenvector is p up to scale) by repeated squaring and power iteration in Double.
    public func eigenCAM(_ input: Tensor, _ request: CAMRequest) throws -> ClassActivationMap {
        try eigenCAMMaps(input, request)[0].map
    }

    /// Eigen-CAM for each target of the request: one map, reported with each target's class and score.
    func eigenCAMMaps(_ input: Tensor, _ request: CAMRequest) throws -> [(map: ClassActivationMap, target: ResolvedTarget)] {
        guard input.batch == 1 else { throw VisualizationError.invalid("Eigen-CAM takes one image, got a batch of \(input.batch)") }
        let (trace, scores, targets) = try classScore(input, request, keep: [request.layerNode])
        let activation = try spatialActivation(trace, request.layerNode)
        let (h, w, c) = (activation.shape[1], activation.shape[2], activation.shape[3])
        let map = principalComponentMap(activation.scalars, positions: h * w, channels: c)
        return targets.map { target in
            (
                ClassActivationMap(
                    heatmap: map, height: h, width: w, classIndex: target.classIndex, score: target.score(scores), scores: scores.scalars),
                target
            )
        }
    }
}

/// Eigen-CAM's map of any n × c matrix (positions × channels, row-major): columns
/// mean-centred, projected on their first principal component, the sign chosen to
/// correlate positively with the uncentred row sums, ReLU, divided by the max. Eigen-CAM
/// applies it to the activations; `eigen_smooth` (pytorch-grad-cam's `get_2d_projection`)
/// to a method's weighted activations in place of their sum over channels.
func principalComponentMap(_ a: [Float], positions n: Int, channels c: Int) -> [Float] {
    var x = a.map(Double.init)  // n × c, row-major
    for ch in 0..<c {
        var mean = 0.0
        for p in 0..<n { mean += x[p * c + ch] }
        mean /= Double(n)
        for p in 0..<n { x[p * c + ch] -= mean }
    }
    var projection: [Double]
    if n <= c {
        var gram = [Double](repeating: 0, count: n * n)  // X Xᵀ
        for i in 0..<n {
            for j in i..<n {
                var s = 0.0
                for ch in 0..<c { s += x[i * c + ch] * x[j * c + ch] }
                gram[i * n + j] = s
                gram[j * n + i] = s
            }
        }
        projection = topEigenvector(gram, n)
    } else {
        var gram = [Double](repeating: 0, count: c * c)  // Xᵀ X
        for p in 0..<n {
            for i in 0..<c {
                let xi = x[p * c + i]
                if xi == 0 { continue }
                for j in 0..<c { gram[i * c + j] += xi * x[p * c + j] }
            }
        }
        let v = topEigenvector(gram, c)
        projection = (0..<n).map { p in (0..<c).reduce(0.0) { $0 + x[p * c + $1] * v[$1] } }
    }
    // Sign: positive correlation with the activation sum (p has mean 0).
    var dot = 0.0
    for p in 0..<n {
        var sum = 0.0
        for ch in 0..<c { sum += Double(a[p * c + ch]) }
        dot += projection[p] * sum
    }
    if dot < 0 { projection = projection.map { -$0 } }
    var map = projection.map { Float(max($0, 0)) }
    normalizeByMax(&map)
    return map
}

/// The unit eigenvector of the largest eigenvalue of a symmetric positive
/// semi-definite d × d matrix (zeros if the matrix is zero): the matrix is squared
/// six times (M⁶⁴, rescaled each time) to widen the eigen-gap, then power iteration
/// on M⁶⁴ and a final polish on M. Deterministic start: all ones plus a small ramp.
func topEigenvector(_ m: [Double], _ d: Int) -> [Double] {
    func normalise(_ v: inout [Double]) -> Double {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { for i in v.indices { v[i] /= norm } }
        return norm
    }
    func apply(_ a: [Double], _ v: [Double]) -> [Double] {
        (0..<d).map { i in
            var s = 0.0
            for j in 0..<d { s += a[i * d + j] * v[j] }
            return s
        }
    }
    let scale = m.reduce(0) { max($0, abs($1)) }
    guard scale > 0 else { return [Double](repeating: 0, count: d) }
    var power = m.map { $0 / scale }
    for _ in 0..<6 {
        var sq = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for l in 0..<d {
                let a = power[i * d + l]
                if a == 0 { continue }
                for j in 0..<d { sq[i * d + j] += a * power[l * d + j] }
            }
        }
        let top = sq.reduce(0) { max($0, abs($1)) }
        guard top > 0 else { break }
        power = sq.map { $0 / top }
    }
    var v = (0..<d).map { 1 + 0.01 * Double($0) / Double(max(d, 1)) }
    _ = normalise(&v)
    for _ in 0..<200 {
        var next = apply(power, v)
        guard normalise(&next) > 0 else { break }
        let change = zip(next, v).reduce(0) { max($0, abs($1.0 - $1.1)) }
        v = next
        if change < 1e-14 { break }
    }
    for _ in 0..<20 {
        var next = apply(m, v)
        guard normalise(&next) > 0 else { break }
        v = next
    }
    return v
}
