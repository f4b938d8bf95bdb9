import Foundation

/// SplitMix64 (Steele, Lea & Flood 2014): a small, seedable generator that gives the
/// same numbers on every platform, so a seed fixes a start image, SmoothGrad's noise,
/// lucid's jitter and the tests' random weights everywhere.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) / 9_007_199_254_740_992.0 }

    /// Uniform in (0, 1]: safe under a logarithm.
    public mutating func nextOpenUnit() -> Double { (Double(next() >> 11) + 1) / 9_007_199_254_740_992.0 }
}

/// Box–Muller: two independent standard normals from two uniforms, `u1` in (0, 1].
public func boxMuller(_ u1: Double, _ u2: Double) -> (Double, Double) {
    let r = (-2 * log(u1)).squareRoot()
    return (r * cos(2 * Double.pi * u2), r * sin(2 * Double.pi * u2))
}
