/// How closely convolutions must follow the plain definition's float32 sums.
///
/// Winograd convolution (F(4×4, 3×3) on oneDNN's avx512_core kernels) does a
/// 3×3 stride-1 convolution in fewer multiplications, at the cost of rounding
/// that differs from the direct sums (within 1e-4 of the result's range). Through
/// a deep ReLU/max-pool network a near-tie can flip and route a gradient
/// elsewhere, so only a filter ascent may ask for it (its picture is judged by
/// eye, README, Speed), never a prediction or an attribution compared with
/// Keras: those always run exact.
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
