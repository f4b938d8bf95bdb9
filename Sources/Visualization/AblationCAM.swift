import Engine

extension Network {
    /// Ablation-CAM (Desai & Ramaswamy 2020; pytorch-grad-cam 1.5's ablation_cam.py):
    /// - s = the class score of the image; s_c = the score with channel c of the target
    ///   layer's output set to 0 (the paper's ablation; pytorch-grad-cam sets it to
    ///   min − 1e7 instead only when the layer has negative values);
    /// - w_c = (s − s_c) / s, the relative drop (its sign flips with s's, as the
    ///   reference's; when s is exactly 0 the drop itself, s − s_c, is the weight);
    /// - map = ReLU(Σ_c w_c A_c) at the layer's resolution, divided by its max.
    /// Gradient-free. The ablated feature maps run `batchSize` at a time from the layer
    /// on (`forward(resumingAt:)`): what lies below it is computed once. A channel that
    /// is zero everywhere already changes nothing and is not run (weight 0).
    public func ablationCAM(_ input: Tensor, _ request: CAMRequest, batchSize: Int = 16, eigenSmooth: Bool = false) throws
        -> ClassActivationMap
    {
        try ablationCAMMaps(input, request, batchSize: batchSize, eigenSmooth: eigenSmooth)[0].map
    }

    /// Ablation-CAM of each target of the request: the ablated feature maps run once for all.
    func ablationCAMMaps(_ input: Tensor, _ request: CAMRequest, batchSize: Int = 16, eigenSmooth: Bool = false) throws
        -> [(map: ClassActivationMap, target: ResolvedTarget)]
    {
        guard input.batch == 1 else { throw VisualizationError.invalid("Ablation-CAM takes one image, got a batch of \(input.batch)") }
        guard batchSize >= 1 else { throw VisualizationError.invalid("batch size must be at least 1") }
        let layer = request.layerNode
        guard layer > 0, layer < request.scoreNode, descendants(of: layer).contains(request.scoreNode) else {
            throw VisualizationError.invalid("node \(layer) does not feed the score node \(request.scoreNode)")
        }
        let context = resumeInputs(from: layer, stopAfter: request.scoreNode)
        let (trace, scores, targets) = try classScore(input, request, keep: context.union([layer]))
        let activation = try spatialActivation(trace, layer)
        let (h, w, c) = (activation.shape[1], activation.shape[2], activation.shape[3])
        let a = activation.scalars
        let positions = h * w
        let live = (0..<c).filter { ch in (0..<positions).contains { a[$0 * c + ch] != 0 } }
        let score = targets.map { $0.score(scores) }
        let scale: [Float] = score.map { $0 != 0 ? 1 / $0 : 1 }
        var weights = [[Float]](repeating: [Float](repeating: 0, count: c), count: targets.count)
        for chunk in chunks(live, of: batchSize) {
            var batch = [Float](repeating: 0, count: chunk.count * a.count)
            for (n, ch) in chunk.enumerated() {
                let base = n * a.count
                for i in a.indices { batch[base + i] = a[i] }
                for p in 0..<positions { batch[base + p * c + ch] = 0 }
            }
            let out = try forward(
                resumingAt: layer, with: Tensor(shape: [chunk.count] + activation.shape.dropFirst(), scalars: batch),
                context: trace, stopAfter: request.scoreNode)
            let s = out[request.scoreNode]!
            for (n, ch) in chunk.enumerated() {
                for t in targets.indices { weights[t][ch] = (score[t] - targets[t].score(s, sample: n)) * scale[t] }
            }
        }
        return targets.indices.map { t in
            let map = weightedChannelMap(a, weights: weights[t], positions: positions, eigenSmooth: eigenSmooth)
            return (
                ClassActivationMap(
                    heatmap: map, height: h, width: w, classIndex: targets[t].classIndex, score: score[t], scores: scores.scalars),
                targets[t]
            )
        }
    }
}
