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
    /// The class is the plain input's (requested, or its top-1) for every augmentation;
    /// pytorch-grad-cam takes each augmentation's own top-1, the same unless an augmentation
    /// changes the prediction. Score and scores are the plain input's.
    func augmentationSmoothed(_ input: Tensor, _ request: CAMRequest, method: CAMMethod, options: CAMOptions) throws -> CAMResult {
        guard input.rank == 4 else { throw VisualizationError.invalid("aug_smooth needs an image input [1, H, W, C], got \(input.shape)") }
        var plain = options
        plain.augSmooth = false
        let reference = try classActivationMap(input, request, method: method, options: plain)
        var fixed = request
        fixed.classIndex = reference.map.classIndex
        let (h, w) = (reference.map.height, reference.map.width)
        var sum = [Float](repeating: 0, count: h * w)
        for (flip, factor) in Self.smoothingAugmentations {
            let map: [Float]
            if !flip && factor == 1 {
                map = reference.map.heatmap
            } else {
                let augmented = augment(input, flip: flip, factor: factor)
                let m = try classActivationMap(augmented, fixed, method: method, options: plain).map
                guard m.height == h, m.width == w else {
                    throw VisualizationError.invalid("the mirrored input gave a \(m.height)x\(m.width) map, not \(h)x\(w)")
                }
                map = flip ? mirrored(m.heatmap, width: w) : m.heatmap
            }
            for i in sum.indices { sum[i] += map[i] }
        }
        var mean = sum.map { $0 / Float(Self.smoothingAugmentations.count) }
        normalizeByMax(&mean)
        var result = reference
        result.map.heatmap = mean
        return result
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
