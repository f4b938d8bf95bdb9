import Engine

extension Network {
    /// Layer-CAM (Jiang et al. 2021): map = ReLU(Σ_k relu(g_k) ⊙ A_k), element-wise
    /// per position (no spatial averaging of the gradient), divided by its max.
    /// g = d score / d A at the target layer.
    public func layerCAM(_ input: Tensor, _ request: CAMRequest) throws -> ClassActivationMap {
        guard input.batch == 1 else { throw VisualizationError.invalid("Layer-CAM takes one image, got a batch of \(input.batch)") }
        let (trace, scores, k) = try classScore(input, request, backwardTo: request.layerNode)
        let activation = try spatialActivation(trace, request.layerNode)
        let grads = try backward(from: request.scoreNode, seed: Self.classSeed(scores, k), to: request.layerNode, trace: trace)
        let (h, w, c) = (activation.shape[1], activation.shape[2], activation.shape[3])
        let a = activation.scalars
        let g = grads.scalars
        var map = [Float](repeating: 0, count: h * w)
        for p in 0..<(h * w) {
            var s: Float = 0
            for ch in 0..<c { s += max(g[p * c + ch], 0) * a[p * c + ch] }
            map[p] = max(s, 0)
        }
        normalizeByMax(&map)
        return ClassActivationMap(heatmap: map, height: h, width: w, classIndex: k, score: scores.scalars[k], scores: scores.scalars)
    }
}
