/// How closely convolutions must follow the plain definition's float32 sums.
///
/// Winograd convolution (F(4×4, 3×3) on oneDNN's avx512_core kernels) does a
/// 3×3 stride-1 convolution in fewer multiplications, at the cost of rounding
/// that differs from the direct sums by ~1e-5 of the result's range. That is
/// noise for a filter ascent, whose tens of steps amplify far smaller rounding
/// differences anyway, but not for a prediction or an attribution someone
/// compares with Keras: those always run exact.
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
