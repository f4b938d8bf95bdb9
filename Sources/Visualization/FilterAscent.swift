import Engine

/// Gradient ascent in input space: the image that makes a filter fire.
///
/// `book` mode is *Deep Learning with Python* §5.4 exactly: the loss is the mean
/// of one channel of the layer's output; the input gradient is normalised by its
/// RMS (`g / (sqrt(mean(g²)) + 1e-5)`) and added with a fixed step.
///
/// Batching: the N filters of a grid are optimised as one batch of N images,
/// image n's loss being the mean of its own channel. Every layer acts on each
/// sample separately at inference, so image n's gradient is exactly that of its
/// own loss — one batched pass replaces N single ones.
public struct FilterAscentParameters: Sendable {
    public var steps: Int = 40
    public var stepSize: Float = 1
    public var size: Int = 150

    public init(steps: Int = 40, stepSize: Float = 1, size: Int = 150) {
        self.steps = steps
        self.stepSize = stepSize
        self.size = size
    }
}

/// Progress of one ascent: the step just finished (1-based) and each image's loss.
public struct AscentProgress: Sendable {
    public var step: Int
    public var steps: Int
    public var losses: [Float]
}

public struct FilterAscentResult: Sendable {
    /// The final input images, [n, size, size, channels], before deprocessing.
    public var images: Tensor
    /// Loss of each image after each step: losses[step][n].
    public var lossHistory: [[Float]]
}

extension Network {
    /// The book's start image: uniform noise in [0, 1) × 20 + 128, from a seeded generator.
    public static func bookStartImages(count: Int, size: Int, channels: Int, seed: UInt64) -> Tensor {
        bookStartImages(count: count, height: size, width: size, channels: channels, seed: seed)
    }

    public static func bookStartImages(count: Int, height: Int, width: Int, channels: Int, seed: UInt64) -> Tensor {
        var rng = SplitMix64(seed: seed)
        let n = count * height * width * channels
        return Tensor(shape: [count, height, width, channels], scalars: (0..<n).map { _ in Float(rng.nextUnit()) * 20 + 128 })
    }

    /// Runs the book's gradient ascent for `filters` of the layer at `layerNode`,
    /// one image per filter, all in one batch, starting from `start`.
    ///
    /// `progress` is called after every step; returning false cancels
    /// (the call then throws `VisualizationError.cancelled`).
    public func bookFilterAscent(
        layerNode: Int, filters: [Int], start: Tensor,
        parameters: FilterAscentParameters,
        progress: (AscentProgress) -> Bool = { _ in true }
    ) throws -> FilterAscentResult {
        guard start.batch == filters.count else {
            throw VisualizationError.invalid("start images (\(start.batch)) and filters (\(filters.count)) differ in number")
        }
        var x = start
        var history: [[Float]] = []
        for step in 1...max(1, parameters.steps) {
            let trace = try forward(x, stopAfter: layerNode, backwardTo: 0)
            let out = trace[layerNode]!
            guard out.rank == 4 else { throw RequestError.notSpatial(layer: nodes[layerNode].name, shape: out.sampleShape) }
            let (hw, c) = (out.shape[1] * out.shape[2], out.shape[3])
            var seed = Tensor(zeros: out.shape)
            var losses = [Float](repeating: 0, count: filters.count)
            for (n, f) in filters.enumerated() {
                guard f >= 0, f < c else {
                    throw VisualizationError.invalid("filter \(f) is out of range: the layer has \(c) (0...\(c - 1))")
                }
                var sum: Float = 0
                for p in 0..<hw {
                    sum += out.scalars[(n * hw + p) * c + f]
                    seed.scalars[(n * hw + p) * c + f] = 1 / Float(hw)
                }
                losses[n] = sum / Float(hw)
            }
            history.append(losses)
            var g = try backward(from: layerNode, seed: seed, to: 0, trace: trace)
            let per = g.sampleCount
            g.scalars.withUnsafeMutableBufferPointer { gp in
                x.scalars.withUnsafeMutableBufferPointer { xp in
                    for n in 0..<filters.count {
                        var sq: Float = 0
                        for i in (n * per)..<((n + 1) * per) { sq += gp[i] * gp[i] }
                        let scale = parameters.stepSize / ((sq / Float(per)).squareRoot() + 1e-5)
                        for i in (n * per)..<((n + 1) * per) { xp[i] += gp[i] * scale }
                    }
                }
            }
            if !progress(AscentProgress(step: step, steps: parameters.steps, losses: losses)) {
                throw VisualizationError.cancelled
            }
        }
        return FilterAscentResult(images: x, lossHistory: history)
    }
}

/// The book's deprocessing of one image (HWC floats → 8-bit): centre on the mean,
/// scale to std 0.1 around 0.5, clip to [0, 1], × 255.
public func bookDeprocess(_ image: ArraySlice<Float>) -> [UInt8] {
    // Double accumulation: a Float mean/std of 67 500 values drifts by a grey level.
    let n = Double(image.count)
    let mean = image.reduce(0.0) { $0 + Double($1) } / n
    let variance = image.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
    let std = variance.squareRoot()
    return image.map { v in
        let y = min(max((Double(v) - mean) / (std + 1e-5) * 0.1 + 0.5, 0), 1) * 255
        return UInt8(min(max(y, 0), 255))
    }
}
