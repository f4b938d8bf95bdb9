import Engine
import Foundation

/// Gradient saliency at the input's resolution. Every map here is the standard
/// single-channel reduction of a per-pixel tensor [1, H, W, C]: max over channels of
/// |value| (Simonyan et al. 2014), divided by its max; the tensor itself is kept
/// in `CAMResult.attribution`.
extension Network {
    /// Vanilla saliency (Simonyan et al. 2014): |d score / d input|, max over channels.
    public func saliency(_ input: Tensor, _ request: CAMRequest) throws -> CAMResult {
        try saliencyMaps(input, request)[0]
    }

    /// Vanilla saliency of each target of the request: one forward pass, one backward pass per target.
    func saliencyMaps(_ input: Tensor, _ request: CAMRequest, guided: Bool = false) throws -> [CAMResult] {
        guard input.batch == 1 else { throw VisualizationError.invalid("saliency takes one image, got a batch of \(input.batch)") }
        let (trace, scores, targets) = try classScore(input, request, backwardTo: 0)
        return try targets.map { target in
            let g = try backward(from: request.scoreNode, seed: target.seed(like: scores), to: 0, trace: trace, guidedReLU: guided)
            return inputResult(guided ? .guidedBackprop : .saliency, input, g, target: target, score: target.score(scores))
        }
    }

    /// SmoothGrad (Smilkov et al. 2017): the mean of the input gradients over n noisy
    /// copies x + N(0, σ²), σ = `smoothGradNoiseLevel` × (max − min) of the input,
    /// then the saliency reduction (|·|, max over channels) of that mean gradient.
    /// The class is fixed on the clean input. Copies run `gradientBatchSize` at a time; the
    /// noise is drawn in copy order from `seed`, so the batch size does not change it.
    public func smoothGrad(_ input: Tensor, _ request: CAMRequest, options: CAMOptions = CAMOptions()) throws -> CAMResult {
        try smoothGradMaps(input, request, options: options)[0]
    }

    /// SmoothGrad of each target of the request: the noisy copies run forward once for all.
    func smoothGradMaps(_ input: Tensor, _ request: CAMRequest, options: CAMOptions = CAMOptions()) throws -> [CAMResult] {
        guard input.batch == 1 else { throw VisualizationError.invalid("SmoothGrad takes one image, got a batch of \(input.batch)") }
        guard options.smoothGradSamples >= 1 else { throw VisualizationError.invalid("SmoothGrad needs at least one sample") }
        let (_, scores, targets) = try classScore(input, request)
        let n = options.smoothGradSamples
        let sigma = smoothGradSigma(input, options)
        var rng = SeededNormal(seed: options.seed)
        var sums = [[Double]](repeating: [Double](repeating: 0, count: input.count), count: targets.count)
        var start = 0
        while start < n {
            // Copies are drawn batch by batch (memory: one batch), in the order of smoothGradInputs.
            let copies = (start..<min(start + options.gradientBatchSize, n)).map { _ in Self.noisyCopy(input, sigma, &rng) }
            let chunk = Tensor.concatenateBatches(copies)
            let gradients = try inputGradients(chunk, scoreNode: request.scoreNode, targets: targets)
            for (t, (g, _)) in gradients.enumerated() {
                for b in 0..<chunk.batch {
                    for i in 0..<input.count { sums[t][i] += Double(g.scalars[b * input.count + i]) }
                }
            }
            start += options.gradientBatchSize
        }
        return targets.indices.map { t in
            let mean = Tensor(shape: input.shape, scalars: sums[t].map { Float($0 / Double(n)) })
            return inputResult(.smoothgrad, input, mean, target: targets[t], score: targets[t].score(scores))
        }
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
        try integratedGradientsMaps(input, request, options: options)[0]
    }

    /// Integrated Gradients of each target of the request: the path's points run forward once for all.
    func integratedGradientsMaps(_ input: Tensor, _ request: CAMRequest, options: CAMOptions = CAMOptions()) throws -> [CAMResult] {
        guard input.batch == 1 else {
            throw VisualizationError.invalid("Integrated Gradients takes one image, got a batch of \(input.batch)")
        }
        let m = options.integratedGradientsSteps
        guard m >= 1 else { throw VisualizationError.invalid("Integrated Gradients needs at least one step") }
        let baseline = options.baseline ?? Tensor(zeros: input.shape)
        guard baseline.shape == input.shape else {
            throw VisualizationError.invalid("baseline shape \(baseline.shape) differs from the input's \(input.shape)")
        }
        let (_, scores, targets) = try classScore(input, request)
        let count = input.count
        var sums = [[Double]](repeating: [Double](repeating: 0, count: count), count: targets.count)
        var endScores = [(Float, Float)](repeating: (0, 0), count: targets.count)
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
            let gradients = try inputGradients(
                Tensor(shape: [steps.count] + input.sampleShape, scalars: points),
                scoreNode: request.scoreNode, targets: targets)
            for (t, (g, s)) in gradients.enumerated() {
                for (n, step) in steps.enumerated() {
                    let weight = (step == 0 || step == m) ? 0.5 : 1.0
                    for i in 0..<count { sums[t][i] += weight * Double(g.scalars[n * count + i]) }
                    if step == 0 { endScores[t].0 = s[n] }
                    if step == m { endScores[t].1 = s[n] }
                }
            }
            j += options.gradientBatchSize
        }
        return targets.indices.map { t in
            var attribution = input
            var total = 0.0
            for i in 0..<count {
                let a = Double(input.scalars[i] - baseline.scalars[i]) * sums[t][i] / Double(m)
                attribution.scalars[i] = Float(a)
                total += a
            }
            var result = inputResult(.integratedGradients, input, attribution, target: targets[t], score: targets[t].score(scores))
            result.completeness = Completeness(attributionSum: Float(total), scoreDifference: endScores[t].1 - endScores[t].0)
            return result
        }
    }

    func inputResult(_ method: CAMMethod, _ input: Tensor, _ raw: Tensor, target: ResolvedTarget, score: Float) -> CAMResult {
        let (h, w) = input.rank == 4 ? (input.shape[1], input.shape[2]) : (1, input.sampleCount)
        return CAMResult(
            method: method,
            map: ClassActivationMap(heatmap: saliencyMap(raw), height: h, width: w, classIndex: target.classIndex, score: score),
            resolution: .input, attribution: raw, target: target)
    }
}
