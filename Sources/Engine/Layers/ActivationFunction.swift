/// An element-wise activation as Keras names it. Softmax acts on the last axis.
public enum ActivationFunction: Sendable, Equatable {
    case linear
    /// Keras' general ReLU: `max_value` caps (relu6 = 6), `negative_slope` is the
    /// leak below `threshold`.
    case relu(maxValue: Float? = nil, negativeSlope: Float = 0, threshold: Float = 0)
    case sigmoid
    case tanh
    case softmax
    /// Smooth activations, written out element by element (forward and derivative side by side
    /// in `Activation.smooth`): swish/silu x·σ(x); elu α(eˣ−1) below 0; exact gelu
    /// ½x(1+erf(x/√2)); selu λ·elu with Klambauer's α, λ; softplus log(1+eˣ).
    case swish
    case elu(alpha: Float = 1)
    case gelu
    case selu
    case softplus
    /// Piecewise-linear sigmoids, which Keras 2 and 3 define differently:
    /// Keras 3 `hard_sigmoid` relu6(x + 3) / 6; Keras 2 `hard_sigmoid` clip(0.2x + 0.5, 0, 1).
    case hardSigmoid
    case hardSigmoidKeras2
    /// Keras 3 `hard_silu` / `hard_swish`: x · relu6(x + 3) / 6.
    case hardSwish
}
