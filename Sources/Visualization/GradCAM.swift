import Engine

/// Class-activation maps from gradients at a convolutional layer.
///
/// Grad-CAM (Selvaraju et al. 2017), exactly as *Deep Learning with Python* §5.4
/// computes it: the class score's gradient w.r.t. the layer's output, averaged
/// over H and W, weights the layer's channels; the weighted mean over channels
/// is passed through ReLU and divided by its maximum.
public struct ClassActivationMap: Sendable {
    /// The heatmap at the layer's own resolution, [h, w], normalised to [0, 1].
    public var heatmap: [Float]
    public var height: Int
    public var width: Int
    /// The class whose evidence is shown, and its score (logit or probability).
    public var classIndex: Int
    public var score: Float
    /// Every output of the score node for this image (the logits, or the model's
    /// output), when the method computed them: predictions come free with the map.
    public var scores: [Float] = []
}

public enum CAMMethod: String, Sendable, Codable, CaseIterable {
    case gradcam
    case gradcamPlusPlus = "gradcam++"
    case scorecam
    case layercam
    case eigencam
    case xgradcam
    case hirescam
    case gradcamElementwise = "gradcam-elementwise"
    case ablationcam
    case saliency
    case smoothgrad
    case integratedGradients = "integrated-gradients"
    case guidedBackprop = "guided-backprop"
    case guidedGradcam = "guided-gradcam"
}

public struct CAMRequest: Sendable {
    /// Node of the layer whose feature map is weighted (e.g. `block5_conv3`).
    public var layerNode: Int
    /// Node whose output holds the class scores (the logits for pre-softmax).
    public var scoreNode: Int
    /// What the maps explain, one map per target (at least one): several share the
    /// forward passes (`Network.classActivationMaps`).
    public var targets: [CAMTarget]

    public init(layerNode: Int, scoreNode: Int, classIndex: Int? = nil) {
        self.init(layerNode: layerNode, scoreNode: scoreNode, targets: [.classIndex(classIndex)])
    }

    public init(layerNode: Int, scoreNode: Int, targets: [CAMTarget]) {
        self.layerNode = layerNode
        self.scoreNode = scoreNode
        self.targets = targets
    }

    /// The class of a single class target (nil: the top class, or not a class target).
    public var classIndex: Int? {
        guard targets.count == 1, case .unit(let k) = targets[0].selection, !targets[0].decrease else { return nil }
        return k
    }
}

/// A broken invariant while rendering (an engine or drawing step given what it cannot
/// take after the request was checked), or a cancellation. User mistakes are
/// `RequestError`; front ends report these as internal errors.
public enum VisualizationError: Error, CustomStringConvertible, Equatable {
    case cancelled
    case invalid(String)

    public var description: String {
        switch self {
        case .cancelled: return "cancelled"
        case .invalid(let detail): return detail
        }
    }
}

extension Network {
    /// The map of one image (batch 1). `classActivationMap` is the entry point;
    /// this keeps the older call for callers that want only the map: Grad-CAM and
    /// Grad-CAM++ go straight to their computation, any other method through
    /// `classActivationMap` with default options.
    public func gradCAM(_ input: Tensor, _ request: CAMRequest, method: CAMMethod = .gradcam) throws -> ClassActivationMap {
        if method == .gradcam || method == .gradcamPlusPlus { return try gradCAMComputation(input, request, method: method) }
        return try classActivationMap(input, request, method: method).map
    }

    /// Grad-CAM, Grad-CAM++ or XGrad-CAM (`method`) for one image (batch 1): the methods
    /// that weight each channel by one number made from its gradient. The map of the
    /// request's first target; `gradCAMMaps` gives one per target.
    func gradCAMComputation(_ input: Tensor, _ request: CAMRequest, method: CAMMethod, eigenSmooth: Bool = false) throws
        -> ClassActivationMap
    {
        try gradCAMMaps(input, request, method: method, eigenSmooth: eigenSmooth)[0].map
    }

    /// One Grad-CAM-family map per target of the request, from one forward pass and one
    /// backward pass per target.
    func gradCAMMaps(_ input: Tensor, _ request: CAMRequest, method: CAMMethod, eigenSmooth: Bool = false) throws
        -> [(map: ClassActivationMap, target: ResolvedTarget)]
    {
        guard input.batch == 1 else { throw VisualizationError.invalid("Grad-CAM takes one image, got a batch of \(input.batch)") }
        let (trace, scores, targets) = try classScore(input, request, backwardTo: request.layerNode)
        let activation = try spatialActivation(trace, request.layerNode)
        return try targets.map { target in
            let grads = try backward(from: request.scoreNode, seed: target.seed(like: scores), to: request.layerNode, trace: trace)
            let map = gradCAMMap(activation, grads, method: method, eigenSmooth: eigenSmooth)
            return (
                ClassActivationMap(
                    heatmap: map, height: activation.shape[1], width: activation.shape[2], classIndex: target.classIndex,
                    score: target.score(scores), scores: scores.scalars),
                target
            )
        }
    }

    /// The map of a feature map [1, h, w, c] and the score's gradient at it.
    private func gradCAMMap(_ activation: Tensor, _ grads: Tensor, method: CAMMethod, eigenSmooth: Bool) -> [Float] {
        let (h, w, c) = (activation.shape[1], activation.shape[2], activation.shape[3])
        let a = activation.scalars
        let g = grads.scalars
        var weights = [Float](repeating: 0, count: c)
        switch method {
        case .gradcam:
            // Channel weight: the gradient's mean over H and W.
            for p in 0..<(h * w) { for ch in 0..<c { weights[ch] += g[p * c + ch] } }
            for ch in 0..<c { weights[ch] /= Float(h * w) }
        case .gradcamPlusPlus:
            // Chattopadhay et al. 2018, eq. 19, with the exponential-score
            // simplification: alpha = g² / (2g² + Σ A·g³), weights = Σ alpha·relu(g).
            var sumA = [Float](repeating: 0, count: c)
            for p in 0..<(h * w) { for ch in 0..<c { sumA[ch] += a[p * c + ch] } }
            for p in 0..<(h * w) {
                for ch in 0..<c {
                    let gi = g[p * c + ch]
                    let g2 = gi * gi
                    let g3 = g2 * gi
                    let denom = 2 * g2 + sumA[ch] * g3
                    let alpha = denom != 0 ? g2 / denom : 0
                    weights[ch] += alpha * max(gi, 0)
                }
            }
        case .xgradcam:
            // Fu et al. 2020 (pytorch-grad-cam 1.5's xgrad_cam.py, its epsilon): the
            // activation-weighted gradient, w = Σ_xy g·A / (Σ_xy A + 1e-7).
            var sumA = [Float](repeating: 0, count: c)
            for p in 0..<(h * w) {
                for ch in 0..<c {
                    sumA[ch] += a[p * c + ch]
                    weights[ch] += g[p * c + ch] * a[p * c + ch]
                }
            }
            for ch in 0..<c { weights[ch] /= sumA[ch] + 1e-7 }
        default:
            break
        }
        if eigenSmooth { return weightedChannelMap(a, weights: weights, positions: h * w, eigenSmooth: true) }
        var map = [Float](repeating: 0, count: h * w)
        for p in 0..<(h * w) {
            var s: Float = 0
            for ch in 0..<c { s += a[p * c + ch] * weights[ch] }
            map[p] = max(s / Float(c), 0)
        }
        let top = map.max() ?? 0
        // An all-zero map stays zero rather than dividing by zero.
        if top > 0 { for i in map.indices { map[i] /= top } }
        return map
    }
}
