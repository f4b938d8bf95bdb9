import Engine

extension Network {
    /// The CAMs that combine gradient and activation position by position, with no
    /// spatial averaging of the gradient (g = d score / d A at the target layer):
    /// - Layer-CAM (Jiang et al. 2021): map = ReLU(Σ_c relu(g_c) ⊙ A_c);
    /// - HiResCAM (Draelos & Carin 2020): map = ReLU(Σ_c g_c ⊙ A_c) — negative evidence
    ///   at a position cancels positive evidence there;
    /// - Grad-CAM element-wise (pytorch-grad-cam 1.5): map = Σ_c ReLU(g_c ⊙ A_c) — it does not;
    /// each divided by its maximum. With `eigenSmooth`, the first principal component of
    /// the per-position terms replaces their sum (pytorch-grad-cam's `eigen_smooth`).
    func elementwiseCAM(_ input: Tensor, _ request: CAMRequest, method: CAMMethod, eigenSmooth: Bool = false) throws
        -> ClassActivationMap
    {
        try elementwiseCAMMaps(input, request, method: method, eigenSmooth: eigenSmooth)[0].map
    }

    /// The element-wise CAM of each target of the request: one forward pass, one backward pass per target.
    func elementwiseCAMMaps(_ input: Tensor, _ request: CAMRequest, method: CAMMethod, eigenSmooth: Bool = false) throws
        -> [(map: ClassActivationMap, target: ResolvedTarget)]
    {
        let term: (_ g: Float, _ a: Float) -> Float
        switch method {
        case .layercam: term = { g, a in max(g, 0) * a }
        case .hirescam: term = { g, a in g * a }
        case .gradcamElementwise: term = { g, a in max(g * a, 0) }
        default: throw VisualizationError.invalid("\(method.rawValue) is not an element-wise CAM")
        }
        guard input.batch == 1 else {
            throw VisualizationError.invalid("\(method.rawValue) takes one image, got a batch of \(input.batch)")
        }
        let (trace, scores, targets) = try classScore(input, request, backwardTo: request.layerNode)
        let activation = try spatialActivation(trace, request.layerNode)
        let (h, w, c) = (activation.shape[1], activation.shape[2], activation.shape[3])
        let a = activation.scalars
        return try targets.map { target in
            let grads = try backward(from: request.scoreNode, seed: target.seed(like: scores), to: request.layerNode, trace: trace)
            let g = grads.scalars
            var map = [Float](repeating: 0, count: h * w)
            if eigenSmooth {
                map = principalComponentMap(a.indices.map { term(g[$0], a[$0]) }, positions: h * w, channels: c)
            } else {
                for p in 0..<(h * w) {
                    var s: Float = 0
                    for ch in 0..<c { s += term(g[p * c + ch], a[p * c + ch]) }
                    map[p] = max(s, 0)
                }
                normalizeByMax(&map)
            }
            return (
                ClassActivationMap(
                    heatmap: map, height: h, width: w, classIndex: target.classIndex, score: target.score(scores), scores: scores.scalars),
                target
            )
        }
    }

    /// Layer-CAM alone (see `elementwiseCAM`).
    public func layerCAM(_ input: Tensor, _ request: CAMRequest) throws -> ClassActivationMap {
        try elementwiseCAM(input, request, method: .layercam)
    }
}
