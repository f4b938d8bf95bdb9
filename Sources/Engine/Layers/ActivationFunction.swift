/// An element-wise activation as Keras names it. Softmax acts on the last axis.
public enum ActivationFunction: Sendable, Equatable {
    case linear
    /// Keras' general ReLU: `max_value` caps (relu6 = 6), `negative_slope` is the
    /// leak below `threshold`.
    case relu(maxValue: Float? = nil, negativeSlope: Float = 0, threshold: Float = 0)
    case sigmoid
    case tanh
    case softmax
}
