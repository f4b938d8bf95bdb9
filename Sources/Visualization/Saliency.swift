import Engine
import Foundation

/// Gradient saliency at the input's resolution. Every map here is the standard
/// single-channel reduction of a per-pixel tensor [1, H, W, C]: max over channels of
/// |value| (Simonyan et al. 2014), divided by its max; the tensor itself is kept
/// in `CAMResult.attribution`.
extension Network {
    /// Vanilla saliency (Simonyan et al. 2014): |d score / d input|, max over channels.
    public func saliency(_ input: Tensor, _ request: CAMRequest) throws -> CAMResult {
        guard input.batch == 1 else { throw VisualizationError.invalid("saliency takes one image, got a batch of \(input.batch)") }
        let k = try resolvedClass(input, request)
        let (g, scores) = try inputGradients(input, scoreNode: request.scoreNode, classIndex: k)
        return inputResult(.saliency, input, g, classIndex: k, score: scores[0])
    }

    /// SmoothGrad (Smilkov et al. 2017): the mean of the input gradients over n noisy
    /// copies x + N(0, σ²), σ = `smoothGradNoiseLevel` × (max − min) of the input,
    /// then the saliency reduction (|·|, max over channels) of that mean gradient.
    /// The class is fixed on the clean input. Copies run `gradientBatchSize` at a time; the
    /// noise is drawn in copy order from `seed`, so the batch size does not change it.
    public func smoothGrad(_ input: Tensor, _ request: CAMRequest, options: CAMOptions = CAMOptions()) throws -> CAMResult {
        guard input.batch == 1 else { throw VisualizationError.invalid("SmoothGrad takes one image, got a batch of \(input.batch)") }
        guard options.smoothGradSamples >= 1 else { throw VisualizationError.invalid("SmoothGrad needs at least one sample") }
        let (_, scores, k) = try classScore(input, request)
        let n = options.smoothGradSamples
        let sigma = smoothGradSigma(input, options)
        var rng = SeededNormal(seed: options.seed)
        var sum = [Double](repeating: 0, count: input.count)
        var start = 0
        while start < n {
            // Copies are drawn batch by batch (memory: one batch), in the order of smoothGradInputs.
            let copies = (start..<min(start + options.gradientBatchSize, n)).map { _ in Self.noisyCopy(input, sigma, &rng) }
            let chunk = Tensor.concatenateBatches(copies)
            let (g, _) = try inputGradients(chunk, scoreNode: request.scoreNode, classIndex: k)
            for b in 0..<chunk.batch {
                for i in 0..<input.count { sum[i] += Double(g.scalars[b * input.count + i]) }
            }
            start += options.gradientBatchSize
        }
        let mean = Tensor(shape: input.shape, scalars: sum.map { Float($0 / Double(n)) })
        return inputResult(.smoothgrad, input, mean, classIndex: k, score: scores.scalars[k])
    }

    /// The noisy copies SmoothGrad averages over, in order (all at once: for tests).
    func smoothGradInputs(_ input: Tensor, options: CAMOptions) -> [Tensor] {
        let sigma = smoothGradSigma(input, options)
        var rng = SeededNormal(seed: options.seed)
        return (0..<options.smoothGradSamples).map { _ in Self.noisyCopy(input, sigma, &rng) }
    }

    func smoothGradSigma(_ input: Tensor, _ options: CAMOptions) -> Double {
        let lo = input.scalars.min() ?? 0
        let hi = input.scalars.max() ?? 0
        return Double(options.smoothGradNoiseLevel) * Double(hi - lo)
    }

    static func noisyCopy(_ input: Tensor, _ sigma: Double, _ rng: inout SeededNormal) -> Tensor {
        var x = input
        for i in 0..<x.count { x.scalars[i] += Float(sigma * rng.next()) }
        return x
    }

    /// Integrated Gradients (Sundararajan et al. 2017) from the baseline x′ (zeros
    /// unless given): IG = (x − x′) ⊙ ∫₀¹ ∂F/∂x(x′ + α(x − x′)) dα with the trapezoid
    /// rule on m = `integratedGradientsSteps` intervals (α = j/m, j = 0…m; the end
    /// points weigh ½). The m + 1 points run `gradientBatchSize` at a time. `completeness`
    /// compares Σ IG with F(x) − F(x′). The map is the saliency reduction of IG.
    public func integratedGradients(_ input: Tensor, _ request: CAMRequest, options: CAMOptions = CAMOptions()) throws -> CAMResult {
        guard input.batch == 1 else {
            throw VisualizationError.invalid("Integrated Gradients takes one image, got a batch of \(input.batch)")
        }
        let m = options.integratedGradientsSteps
        guard m >= 1 else { throw VisualizationError.invalid("Integrated Gradients needs at least one step") }
        let baseline = options.baseline ?? Tensor(zeros: input.shape)
        guard baseline.shape == input.shape else {
            throw VisualizationError.invalid("baseline shape \(baseline.shape) differs from the input's \(input.shape)")
        }
        let (_, scores, k) = try classScore(input, request)
        let count = input.count
        var sum = [Double](repeating: 0, count: count)
        var endScores: (Float, Float) = (0, 0)
        var j = 0
        while j <= m {
            let steps = Array(j...min(j + options.gradientBatchSize - 1, m))
            var points = [Float](repeating: 0, count: steps.count * count)
            for (n, step) in steps.enumerated() {
                let alpha = Float(step) / Float(m)
                for i in 0..<count {
                    points[n * count + i] = baseline.scalars[i] + alpha * (input.scalars[i] - baseline.scalars[i])
                }
            }
            let (g, s) = try inputGradients(
                Tensor(shape: [steps.count] + input.sampleShape, scalars: points),
                scoreNode: request.scoreNode, classIndex: k)
            for (n, step) in steps.enumerated() {
                let weight = (step == 0 || step == m) ? 0.5 : 1.0
                for i in 0..<count { sum[i] += weight * Double(g.scalars[n * count + i]) }
                if step == 0 { endScores.0 = s[n] }
                if step == m { endScores.1 = s[n] }
            }
            j += options.gradientBatchSize
        }
        var attribution = input
        var total = 0.0
        for i in 0..<count {
            let a = Double(input.scalars[i] - baseline.scalars[i]) * sum[i] / Double(m)
            attribution.scalars[i] = Float(a)
            total += a
        }
        var result = inputResult(.integratedGradients, input, attribution, classIndex: k, score: scores.scalars[k])
        result.completeness = Completeness(attributionSum: Float(total), scoreDifference: endScores.1 - endScores.0)
        return result
    }

    /// The class of a request on this input (the given one, or the top-1 score).
    func resolvedClass(_ input: Tensor, _ request: CAMRequest) throws -> Int {
        if let k = request.classIndex { return k }
        return try classScore(input, request).classIndex
    }

    func inputResult(_ method: CAMMethod, _ input: Tensor, _ raw: Tensor, classIndex: Int, score: Float) -> CAMResult {
        let (h, w) = input.rank == 4 ? (input.shape[1], input.shape[2]) : (1, input.sampleCount)
        return CAMResult(
            method: method,
            map: ClassActivationMap(heatmap: saliencyMap(raw), height: h, width: w, classIndex: classIndex, score: score),
            resolution: .input, attribution: raw)
    }
}
