import Engine
import Foundation

/// The final activation of a classifier, split off its logits: a softmax (one class of
/// many) or a sigmoid (binary, or independent labels). The class score of the papers is
/// the logit before it — the probability saturates, and its gradient with it (a sigmoid's
/// is p(1 − p) times the logit's) — so a model's `logitsNode` is the input of either.
public enum ClassifierHead: String, Sendable, Codable, Equatable {
    case softmax, sigmoid

    /// The head an engine activation is, if any.
    public init?(_ function: ActivationFunction) {
        switch function {
        case .softmax: self = .softmax
        case .sigmoid: self = .sigmoid
        default: return nil
        }
    }

    /// The probabilities of one sample's logits, as the model's output computes them.
    public func probabilities(_ logits: [Float]) -> [Float] {
        switch self {
        case .softmax: return Engine.softmax(logits)
        case .sigmoid: return logits.map { Float(1 / (1 + exp(-Double($0)))) }
        }
    }
}
