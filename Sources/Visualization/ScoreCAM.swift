import Engine
import Foundation
import Imaging

extension Network {
    /// Score-CAM (Wang et al. 2020), the variant of the authors' code that the
    /// fixture manifest documents:
    /// - M_k = A_k upsampled to the input size by bilinear interpolation with
    ///   half-pixel centres (`tf.image.resize(method="bilinear", antialias=False)`,
    ///   Imaging's `FloatImage.resizedBilinear`);
    /// - H_k = (M_k − min M_k) / (max M_k − min M_k), min/max over the upsampled map;
    ///   a constant M_k gets weight 0 and is not run;
    /// - w_k = softmax probability of the class for the input X ⊙ H_k (H_k broadcast
    ///   over the input channels) — no baseline subtracted, no softmax over k. The
    ///   probability is the score node's own output when that node is a softmax or a
    ///   sigmoid, else that activation applied to the score node's output (the logits of
    ///   a softmax head, or of a sigmoid head such as the book's cats-vs-dogs net; see
    ///   `probabilityRule`);
    /// - map = ReLU(Σ_k w_k A_k) at the layer's resolution, divided by its max.
    /// The masked inputs run `batchSize` at a time. A target other than a class reads the
    /// same functional of the probabilities: Σ W · p, the activation applied to each cell of
    /// a per-pixel output.
    public func scoreCAM(_ input: Tensor, _ request: CAMRequest, batchSize: Int = 16, eigenSmooth: Bool = false) throws
        -> ClassActivationMap
    {
        try scoreCAMMaps(input, request, batchSize: batchSize, eigenSmooth: eigenSmooth)[0].map
    }

    /// Score-CAM of each target of the request: the masked images run once for all.
    func scoreCAMMaps(_ input: Tensor, _ request: CAMRequest, batchSize: Int = 16, eigenSmooth: Bool = false) throws
        -> [(map: ClassActivationMap, target: ResolvedTarget)]
    {
        guard input.batch == 1 else { throw VisualizationError.invalid("Score-CAM takes one image, got a batch of \(input.batch)") }
        guard batchSize >= 1 else { throw VisualizationError.invalid("batch size must be at least 1") }
        let (trace, scores, targets) = try classScore(input, request, keep: [request.layerNode])
        let activation = try spatialActivation(trace, request.layerNode)
        guard input.rank == 4 else { throw VisualizationError.invalid("Score-CAM needs an image input [1, H, W, C], got \(input.shape)") }
        let (h, w, c) = (activation.shape[1], activation.shape[2], activation.shape[3])
        let (inH, inW, inC) = (input.shape[1], input.shape[2], input.shape[3])
        let pixels = inH * inW
        // One channel's upsampled map; made twice (for its min/max, then for its batch)
        // rather than kept for all channels at once (224² × 1280 floats would be 257 MB).
        let a = activation.scalars
        func upsampled(_ ch: Int) throws -> [Float] {
            try upsampleBilinear((0..<(h * w)).map { a[$0 * c + ch] }, width: w, height: h, toWidth: inW, toHeight: inH)
        }
        var lo = [Float](repeating: 0, count: c)
        var hi = [Float](repeating: 0, count: c)
        for ch in 0..<c {
            // Upsampling 1,280 maps takes long enough that it must be interruptible too.
            try ComputeBoundary.cross()
            let m = try upsampled(ch)
            lo[ch] = m.min()!
            hi[ch] = m.max()!
        }
        let live = (0..<c).filter { hi[$0] > lo[$0] }
        let rule = probabilityRule(scoreNode: request.scoreNode, outputs: scores.sampleCount)
        let groups = scores.shape.last ?? 1
        var weights = [[Float]](repeating: [Float](repeating: 0, count: c), count: targets.count)
        for chunk in chunks(live, of: batchSize) {
            var batch = [Float](repeating: 0, count: chunk.count * pixels * inC)
            for (n, ch) in chunk.enumerated() {
                try ComputeBoundary.cross()
                let scale = 1 / (hi[ch] - lo[ch])
                let mask = try upsampled(ch)
                for p in 0..<pixels {
                    let m = (mask[p] - lo[ch]) * scale
                    for q in 0..<inC {
                        batch[(n * pixels + p) * inC + q] = input.scalars[p * inC + q] * m
                    }
                }
            }
            let out = try forward(Tensor(shape: [chunk.count, inH, inW, inC], scalars: batch), stopAfter: request.scoreNode)
            let s = out[request.scoreNode]!
            let per = s.sampleCount
            for (n, ch) in chunk.enumerated() {
                let probabilities = rule.apply(s.scalars[(n * per)..<((n + 1) * per)], groupsOf: groups)
                for t in targets.indices { weights[t][ch] = targets[t].score(of: probabilities) }
            }
        }
        return targets.indices.map { t in
            let map = weightedChannelMap(a, weights: weights[t], positions: h * w, eigenSmooth: eigenSmooth)
            return (
                ClassActivationMap(
                    heatmap: map, height: h, width: w, classIndex: targets[t].classIndex, score: targets[t].score(scores),
                    scores: scores.scalars),
                targets[t]
            )
        }
    }
}

enum ProbabilityRule: Equatable {
    case read, softmax, sigmoid

    /// One sample's scores as probabilities: as they are, a softmax over each run of
    /// `groupsOf` values (the last axis: the classes of a vector output, or of one cell of
    /// a per-pixel output), or a sigmoid of each.
    func apply(_ row: ArraySlice<Float>, groupsOf size: Int) -> ArraySlice<Float> {
        switch self {
        case .read: return row
        case .sigmoid: return ArraySlice(row.map { Float(1 / (1 + exp(-Double($0)))) })
        case .softmax:
            let size = max(size, 1)
            var out: [Float] = []
            out.reserveCapacity(row.count)
            var start = row.startIndex
            while start < row.endIndex {
                let end = min(start + size, row.endIndex)
                out += Engine.softmax(Array(row[start..<end]))
                start = end
            }
            return ArraySlice(out)
        }
    }
}

extension Network {
    /// How Score-CAM turns the score node's output into the class probability: read it
    /// from a softmax or sigmoid node; apply the softmax or sigmoid that the network
    /// applies to it (a head's logits: a multi-label sigmoid head has several units);
    /// else, the sigmoid of a single unit or the softmax of several.
    func probabilityRule(scoreNode: Int, outputs: Int) -> ProbabilityRule {
        func rule(_ layer: (any Layer)?) -> ProbabilityRule? {
            switch (layer as? Activation)?.function {
            case .softmax?: return .softmax
            case .sigmoid?: return .sigmoid
            default: return nil
            }
        }
        if rule(nodes[scoreNode].layer) != nil { return .read }
        if let applied = nodes.lazy.filter({ $0.inputs == [scoreNode] }).compactMap({ rule($0.layer) }).first { return applied }
        return outputs == 1 ? .sigmoid : .softmax
    }
}
