/// How closely convolutions must follow the plain definition's float32 sums.
///
/// Winograd convolution (F(4×4, 3×3) on oneDNN's avx512_core kernels) does a
/// 3×3 stride-1 convolution in fewer multiplications, at the cost of rounding
/// that differs from the direct sums (within 1e-4 of the result's range). Through
/// a deep ReLU/max-pool network a near-tie can flip and route a gradient
/// elsewhere, so it is never a default: a filter ascent takes it from the server's
/// `compute.numerics` or `--numerics` (its picture is judged by eye, docs/performance.md, fast numerics), a
/// heatmap when its request asks (`numerics=fast`). Predictions, activations and
/// gradients, compared with Keras, run exact.
public enum Numerics: String, Sendable, Codable, CaseIterable {
    /// Direct convolution everywhere.
    case exact
    /// Winograd where oneDNN has it for the layer on this CPU and it pays
    /// (`DNNLConvolution.winogradFits`); direct elsewhere.
    case fast

    /// The numerics of convolutions run by the current task (or thread): exact
    /// unless a caller scopes a computation with `Numerics.$current.withValue(.fast) { … }`.
    /// Convolutions always run on the calling thread (oneDNN's OpenMP team is
    /// started from it), so the scope covers every convolution of the computation.
    @TaskLocal public static var current: Numerics = .exact
}

extension Numerics {
    /// A request's numerics as its identity holds it: nil for exact (the default, so exact
    /// requests keep the addresses they had before the field existed), `.fast` when asked.
    public static func canonical(_ numerics: Numerics?) -> Numerics? { numerics == .fast ? .fast : nil }

    /// Runs `body` with `numerics` (nil: exact) for every convolution in it.
    public static func scoped<T>(_ numerics: Numerics?, _ body: () throws -> T) rethrows -> T {
        try Numerics.$current.withValue(numerics ?? .exact, operation: body)
    }
}
