/// A symmetric M-matrix A = diag(d) − W (W ≥ 0, zero diagonal) in compressed rows: the form of
/// ROAD's imputation system and of every coarse level built from it.
struct SymmetricSparseMatrix: Sendable {
    var diagonal: [Double]
    /// Row i's off-diagonal entries are columns/weights[rowStart[i] ..< rowStart[i + 1]], the
    /// weights being −A[i, j].
    var rowStart: [Int]
    var columns: [Int32]
    var weights: [Double]

    var count: Int { diagonal.count }

    /// out = A v.
    func multiply(_ v: UnsafeBufferPointer<Double>, into out: UnsafeMutableBufferPointer<Double>) {
        rowStart.withUnsafeBufferPointer { start in
            columns.withUnsafeBufferPointer { column in
                weights.withUnsafeBufferPointer { weight in
                    diagonal.withUnsafeBufferPointer { d in
                        for i in 0..<d.count {
                            var s = d[i] * v[i]
                            for e in start[i]..<start[i + 1] { s -= weight[e] * v[Int(column[e])] }
                            out[i] = s
                        }
                    }
                }
            }
        }
    }

    /// One Gauss–Seidel sweep on A x = b, rows in increasing order or, for the sweep after a
    /// coarse correction, decreasing: the pair keeps the V-cycle symmetric, as CG needs.
    func gaussSeidel(_ x: UnsafeMutableBufferPointer<Double>, _ b: UnsafeBufferPointer<Double>, forward: Bool) {
        rowStart.withUnsafeBufferPointer { start in
            columns.withUnsafeBufferPointer { column in
                weights.withUnsafeBufferPointer { weight in
                    diagonal.withUnsafeBufferPointer { d in
                        for k in 0..<d.count {
                            let i = forward ? k : d.count - 1 - k
                            var s = b[i]
                            for e in start[i]..<start[i + 1] { s += weight[e] * x[Int(column[e])] }
                            x[i] = s / d[i]
                        }
                    }
                }
            }
        }
    }

    /// The Galerkin matrix Pᵀ A P of piecewise-constant aggregation (row i belongs to
    /// aggregate `aggregate[i]` < `coarseCount`): again symmetric with the same sign pattern,
    /// and positive definite when A is.
    func aggregated(by aggregate: [Int32], coarseCount: Int) -> SymmetricSparseMatrix {
        // Fine rows grouped by aggregate (a counting sort) so each coarse row is summed in one place.
        var memberStart = [Int](repeating: 0, count: coarseCount + 1)
        for a in aggregate { memberStart[Int(a) + 1] += 1 }
        for i in 0..<coarseCount { memberStart[i + 1] += memberStart[i] }
        var members = [Int](repeating: 0, count: count)
        var fill = memberStart
        for (i, a) in aggregate.enumerated() {
            members[fill[Int(a)]] = i
            fill[Int(a)] += 1
        }
        var coarse = SymmetricSparseMatrix(diagonal: [], rowStart: [0], columns: [], weights: [])
        coarse.diagonal.reserveCapacity(coarseCount)
        var accumulated = [Double](repeating: 0, count: coarseCount)
        var touched: [Int32] = []
        for c in 0..<coarseCount {
            var d = 0.0
            for m in memberStart[c]..<memberStart[c + 1] {
                let i = members[m]
                d += diagonal[i]
                for e in rowStart[i]..<rowStart[i + 1] {
                    let j = aggregate[Int(columns[e])]
                    if Int(j) == c {
                        d -= weights[e]
                    } else {
                        if accumulated[Int(j)] == 0 { touched.append(j) }
                        accumulated[Int(j)] += weights[e]
                    }
                }
            }
            touched.sort()
            for j in touched {
                coarse.columns.append(j)
                coarse.weights.append(accumulated[Int(j)])
                accumulated[Int(j)] = 0
            }
            touched.removeAll(keepingCapacity: true)
            coarse.diagonal.append(d)
            coarse.rowStart.append(coarse.columns.count)
        }
        return coarse
    }
}

/// A multigrid preconditioner for systems on pixel grids: each level joins the unknowns of
/// 2×2 pixel blocks into one (geometric aggregates, so no setup search), coarse matrices are
/// Galerkin products, one symmetric Gauss–Seidel sweep around each coarse correction, and a
/// dense Cholesky factor at the coarsest level. Plain conjugate gradients need hundreds of
/// iterations on ROAD's systems (their condition grows with the removed regions' width);
/// preconditioned by one V-cycle, under 30 (the test at 224² checks it).
struct AggregationMultigrid: Sendable {
    private struct Level: Sendable {
        var matrix: SymmetricSparseMatrix
        /// Each row's aggregate in the next level.
        var aggregate: [Int32]
    }

    private var levels: [Level] = []
    private var coarsest: SymmetricSparseMatrix
    private var cholesky: [Double] = []
    /// Factor of the coarse correction: piecewise-constant interpolation undershoots smooth
    /// errors, and a longer step recovers most of it while the cycle stays positive definite.
    static let correction = 1.5

    /// `rows`/`cols`: each unknown's pixel position.
    init(_ matrix: SymmetricSparseMatrix, rows: [Int32], cols: [Int32], coarsestSize: Int = 256) {
        var matrix = matrix
        var (rows, cols) = (rows, cols)
        while matrix.count > coarsestSize {
            let height = Int(rows.max() ?? 0) / 2 + 1
            let width = Int(cols.max() ?? 0) / 2 + 1
            var index = [Int32](repeating: -1, count: height * width)
            var aggregate = [Int32](repeating: 0, count: matrix.count)
            var (coarseRows, coarseCols): ([Int32], [Int32]) = ([], [])
            for i in 0..<matrix.count {
                let cell = Int(rows[i] / 2) * width + Int(cols[i] / 2)
                if index[cell] < 0 {
                    index[cell] = Int32(coarseRows.count)
                    coarseRows.append(rows[i] / 2)
                    coarseCols.append(cols[i] / 2)
                }
                aggregate[i] = index[cell]
            }
            // Isolated unknowns stop coarsening: nothing left to join.
            guard coarseRows.count < matrix.count else { break }
            levels.append(Level(matrix: matrix, aggregate: aggregate))
            matrix = matrix.aggregated(by: aggregate, coarseCount: coarseRows.count)
            (rows, cols) = (coarseRows, coarseCols)
        }
        coarsest = matrix
        cholesky = Self.factor(matrix)
    }

    /// Dense lower Cholesky factor, row-major.
    private static func factor(_ a: SymmetricSparseMatrix) -> [Double] {
        let n = a.count
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            l[i * n + i] = a.diagonal[i]
            for e in a.rowStart[i]..<a.rowStart[i + 1] { l[i * n + Int(a.columns[e])] = -a.weights[e] }
        }
        for j in 0..<n {
            var d = l[j * n + j]
            for k in 0..<j { d -= l[j * n + k] * l[j * n + k] }
            let pivot = d > 0 ? d.squareRoot() : 1
            l[j * n + j] = pivot
            for i in (j + 1)..<max(n, j + 1) {
                var s = l[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = s / pivot
            }
        }
        return l
    }

    private func solveCoarsest(_ b: [Double]) -> [Double] {
        let n = coarsest.count
        var y = b
        for i in 0..<n {
            var s = y[i]
            for k in 0..<i { s -= cholesky[i * n + k] * y[k] }
            y[i] = s / cholesky[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = y[i]
            for k in (i + 1)..<max(n, i + 1) { s -= cholesky[k * n + i] * y[k] }
            y[i] = s / cholesky[i * n + i]
        }
        return y
    }

    /// One V-cycle from zero: an approximation of A⁻¹ b, symmetric and positive definite in b.
    func apply(_ b: [Double]) -> [Double] { cycle(at: 0, b) }

    private func cycle(at depth: Int, _ b: [Double]) -> [Double] {
        guard depth < levels.count else { return solveCoarsest(b) }
        let level = levels[depth]
        let a = level.matrix
        var x = [Double](repeating: 0, count: a.count)
        var residual = [Double](repeating: 0, count: a.count)
        x.withUnsafeMutableBufferPointer { xb in
            b.withUnsafeBufferPointer { a.gaussSeidel(xb, $0, forward: true) }
            residual.withUnsafeMutableBufferPointer { a.multiply(UnsafeBufferPointer(xb), into: $0) }
        }
        let coarseCount = depth + 1 < levels.count ? levels[depth + 1].matrix.count : coarsest.count
        var coarseB = [Double](repeating: 0, count: coarseCount)
        for i in 0..<a.count { coarseB[Int(level.aggregate[i])] += b[i] - residual[i] }
        let e = cycle(at: depth + 1, coarseB)
        for i in 0..<a.count { x[i] += Self.correction * e[Int(level.aggregate[i])] }
        x.withUnsafeMutableBufferPointer { xb in b.withUnsafeBufferPointer { a.gaussSeidel(xb, $0, forward: false) } }
        return x
    }
}
