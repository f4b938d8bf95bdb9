import Engine

extension Network {
    /// The augmentations of `aug_smooth`, pytorch-grad-cam 1.5's
    /// `forward_augmentation_smoothing`: ttach's HorizontalFlip × Multiply(0.9, 1, 1.1) —
    /// the model input mirrored or not, times a factor (a brightness change of the
    /// preprocessed input, not a rescaling) — in ttach's order.
    static let smoothingAugmentations: [(flip: Bool, factor: Float)] = [false, true].flatMap { flip in
        [Float(0.9), 1, 1.1].map { (flip, $0) }
    }

    /// A layer-resolution CAM averaged over `smoothingAugmentations`: each augmented input's
    /// map (normalised to [0, 1], the eigen-smoothed one with `options.eigenSmooth`) is
    /// mirrored back when its input was mirrored, the six are averaged, and the mean is
    /// divided by its maximum (pytorch-grad-cam leaves the mean as it is: a positive scale).
    /// Each target is resolved on the plain input (its class, requested or the top-1; a
    /// segmentation's mask) and kept for every augmentation, a mask mirrored with its input;
    /// pytorch-grad-cam takes each augmentation's own top-1, the same unless an augmentation
    /// changes the prediction. Score and scores are the plain input's. One map per target.
    func augmentationSmoothed(_ input: Tensor, _ request: CAMRequest, method: CAMMethod, options: CAMOptions) throws -> [CAMResult] {
        guard input.rank == 4 else { throw VisualizationError.invalid("aug_smooth needs an image input [1, H, W, C], got \(input.shape)") }
        var plain = options
        plain.augSmooth = false
        let references = try classActivationMaps(input, request, method: method, options: plain)
        let resolved = references.map { $0.target! }
        let (h, w) = (references[0].map.height, references[0].map.width)
        var sums = [[Float]](repeating: [Float](repeating: 0, count: h * w), count: references.count)
        for (flip, factor) in Self.smoothingAugmentations {
            let maps: [[Float]]
            if !flip && factor == 1 {
                maps = references.map(\.map.heatmap)
            } else {
                var fixed = request
                fixed.targets = resolved.map { CAMTarget(.resolved(flip ? $0.mirrored() : $0)) }
                let augmented = augment(input, flip: flip, factor: factor)
                maps = try classActivationMaps(augmented, fixed, method: method, options: plain).map { result in
                    let m = result.map
                    guard m.height == h, m.width == w else {
                        throw VisualizationError.invalid("the mirrored input gave a \(m.height)x\(m.width) map, not \(h)x\(w)")
                    }
                    return flip ? mirrored(m.heatmap, width: w) : m.heatmap
                }
            }
            for t in sums.indices { for i in sums[t].indices { sums[t][i] += maps[t][i] } }
        }
        return references.indices.map { t in
            var mean = sums[t].map { $0 / Float(Self.smoothingAugmentations.count) }
            normalizeByMax(&mean)
            var result = references[t]
            result.map.heatmap = mean
            return result
        }
    }

    /// The input mirrored left-right (optionally) and multiplied by `factor`.
    private func augment(_ x: Tensor, flip: Bool, factor: Float) -> Tensor {
        let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
        var out = x
        for y in 0..<h {
            for col in 0..<w {
                let from = (y * w + (flip ? w - 1 - col : col)) * c
                let to = (y * w + col) * c
                for k in 0..<c { out.scalars[to + k] = x.scalars[from + k] * factor }
            }
        }
        return out
    }
}

/// A row-major map with `width` columns, mirrored left-right.
func mirrored(_ map: [Float], width: Int) -> [Float] {
    map.indices.map { i in
        let (row, col) = (i / width, i % width)
        return map[row * width + width - 1 - col]
    }
}
