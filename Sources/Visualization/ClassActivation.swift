import Engine
import Foundation
import Imaging

/// The whole class-activation family behind one entry point,
/// `Network.classActivationMap(_:_:method:options:)`.
///
/// CAMs (Grad-CAM, Grad-CAM++, XGrad-CAM, Score-CAM, Ablation-CAM, Layer-CAM, HiResCAM,
/// Grad-CAM element-wise, Eigen-CAM) give a map at the
/// target layer's resolution; the gradient-saliency methods (vanilla saliency,
/// SmoothGrad, Integrated Gradients, Guided Backprop, Guided Grad-CAM) give one at
/// the input's resolution and keep the raw per-pixel tensor in `attribution`.

/// Where a `ClassActivationMap`'s pixels live.
public enum MapResolution: String, Sendable, Equatable {
    /// The target layer's H × W (upsample to draw it over the image).
    case layer
    /// The model input's H × W.
    case input
}

/// Knobs of the methods that need more than a gradient. Defaults are the papers'.
public struct CAMOptions: Sendable {
    /// Masked images per forward pass for Score-CAM, ablated feature maps per pass for
    /// Ablation-CAM (bounds memory; the result does not depend on it). Forward only, so
    /// intermediate outputs are freed as it goes.
    public var batchSize: Int
    /// Images per forward + backward pass for SmoothGrad copies and Integrated-Gradients
    /// steps. Back-propagation keeps every layer's output of the batch: on
    /// EfficientNet-Lite0 at 224² that is ≈ 100 MB per image (measured peak 1.7 GB at 16),
    /// hence the smaller default. The result does not depend on it.
    public var gradientBatchSize: Int
    /// SmoothGrad: number of noisy copies (Smilkov et al.: 25 is plenty).
    public var smoothGradSamples: Int
    /// SmoothGrad: noise σ as a fraction of the input's (max − min) (the paper's 10–20 %).
    public var smoothGradNoiseLevel: Float
    /// SmoothGrad: seed of the Gaussian noise (SplitMix64 + Box–Muller), so runs repeat.
    public var seed: UInt64
    /// Integrated Gradients: m, the number of intervals of the trapezoid rule (m + 1 gradients).
    public var integratedGradientsSteps: Int
    /// Integrated Gradients: the baseline x′, shaped like the input; nil = all zeros.
    public var baseline: Tensor?
    /// CAMs at the layer's resolution: the map is the first principal component of the
    /// method's weighted activations instead of their sum over channels (pytorch-grad-cam's
    /// `eigen_smooth`; see `principalComponentMap`). No effect on Eigen-CAM, which is that.
    public var eigenSmooth: Bool
    /// CAMs at the layer's resolution: test-time augmentation (`augmentationSmoothed`).
    public var augSmooth: Bool

    public init(
        batchSize: Int = 16, gradientBatchSize: Int = 4, smoothGradSamples: Int = 25, smoothGradNoiseLevel: Float = 0.15,
        seed: UInt64 = 0, integratedGradientsSteps: Int = 32, baseline: Tensor? = nil, eigenSmooth: Bool = false,
        augSmooth: Bool = false
    ) {
        self.batchSize = batchSize
        self.gradientBatchSize = gradientBatchSize
        self.smoothGradSamples = smoothGradSamples
        self.smoothGradNoiseLevel = smoothGradNoiseLevel
        self.seed = seed
        self.integratedGradientsSteps = integratedGradientsSteps
        self.baseline = baseline
        self.eigenSmooth = eigenSmooth
        self.augSmooth = augSmooth
    }
}

/// Integrated Gradients' completeness axiom: Σ attributions ≈ F(x) − F(x′).
public struct Completeness: Sendable, Equatable {
    /// Σ over every input element of the attributions.
    public var attributionSum: Float
    /// F(x) − F(baseline), the class score difference.
    public var scoreDifference: Float
    /// |attributionSum − scoreDifference| (shrinks as the step count grows).
    public var error: Float { abs(attributionSum - scoreDifference) }
}

/// What `classActivationMap` returns: the map plus what a caller needs to use it.
public struct CAMResult: Sendable {
    public var method: CAMMethod
    /// Normalised to [0, 1]; `map.height × map.width` is `resolution`'s size.
    public var map: ClassActivationMap
    public var resolution: MapResolution
    /// Saliency family only: the raw per-pixel tensor [1, H, W, C] before the
    /// abs/max-over-channels reduction (the gradient, the SmoothGrad mean gradient,
    /// the IG attributions, the guided gradient, guided backprop ⊙ Grad-CAM).
    public var attribution: Tensor?
    /// Integrated Gradients only.
    public var completeness: Completeness?
    /// The target's weights on the score node, as resolved on this image: what the
    /// faithfulness metrics and any later pass on another input score.
    public var target: ResolvedTarget?
}

extension CAMMethod {
    /// Whether the map is at the input's resolution (the gradient-saliency methods).
    public var resolution: MapResolution {
        switch self {
        case .gradcam, .gradcamPlusPlus, .xgradcam, .scorecam, .ablationcam, .layercam, .hirescam, .gradcamElementwise,
            .eigencam:
            return .layer
        case .saliency, .smoothgrad, .integratedGradients, .guidedBackprop, .guidedGradcam: return .input
        }
    }
}

extension Network {
    /// One class-activation map of any `CAMMethod` for one image (batch 1), of the
    /// request's single target.
    ///
    /// `request.scoreNode` is the class score (the logits node for the pre-softmax
    /// score, the default of the papers; the softmax output on request); a class target
    /// without a class picks the top-1 class of that score.
    /// `request.layerNode` is the spatial feature map for the CAMs (ignored by
    /// saliency, SmoothGrad, Integrated Gradients and Guided Backprop).
    public func classActivationMap(
        _ input: Tensor, _ request: CAMRequest, method: CAMMethod,
        options: CAMOptions = CAMOptions()
    ) throws -> CAMResult {
        guard request.targets.count == 1 else {
            throw VisualizationError.invalid("classActivationMap explains one target, got \(request.targets.count)")
        }
        return try classActivationMaps(input, request, method: method, options: options)[0]
    }

    /// One map per target of the request, in its order, each equal to the map of that
    /// target alone: the targets share the method's forward passes (the image's, Score-CAM's
    /// masked images, Ablation-CAM's ablated maps, SmoothGrad's noisy copies, the
    /// Integrated-Gradients path) and add one backward pass each where the method has one.
    public func classActivationMaps(
        _ input: Tensor, _ request: CAMRequest, method: CAMMethod,
        options: CAMOptions = CAMOptions()
    ) throws -> [CAMResult] {
        guard input.batch == 1 else {
            throw VisualizationError.invalid("\(method.rawValue) takes one image, got a batch of \(input.batch)")
        }
        guard !request.targets.isEmpty else { throw VisualizationError.invalid("a map needs at least one target") }
        guard options.batchSize >= 1, options.gradientBatchSize >= 1 else {
            throw VisualizationError.invalid("batch sizes must be at least 1")
        }
        if options.augSmooth, method.resolution == .layer {
            return try augmentationSmoothed(input, request, method: method, options: options)
        }
        let smooth = options.eigenSmooth
        func layerResults(_ maps: [(map: ClassActivationMap, target: ResolvedTarget)]) -> [CAMResult] {
            maps.map { CAMResult(method: method, map: $0.map, resolution: .layer, target: $0.target) }
        }
        switch method {
        case .gradcam, .gradcamPlusPlus, .xgradcam:
            return layerResults(try gradCAMMaps(input, request, method: method, eigenSmooth: smooth))
        case .scorecam:
            return layerResults(try scoreCAMMaps(input, request, batchSize: options.batchSize, eigenSmooth: smooth))
        case .ablationcam:
            return layerResults(try ablationCAMMaps(input, request, batchSize: options.batchSize, eigenSmooth: smooth))
        case .layercam, .hirescam, .gradcamElementwise:
            return layerResults(try elementwiseCAMMaps(input, request, method: method, eigenSmooth: smooth))
        case .eigencam:
            return layerResults(try eigenCAMMaps(input, request))
        case .saliency:
            return try saliencyMaps(input, request)
        case .smoothgrad:
            return try smoothGradMaps(input, request, options: options)
        case .integratedGradients:
            return try integratedGradientsMaps(input, request, options: options)
        case .guidedBackprop:
            return try guidedBackpropMaps(input, request)
        case .guidedGradcam:
            return try guidedGradCAMMaps(input, request)
        }
    }

    // MARK: - Shared pieces

    /// Forward pass of one image to the score node; the request's targets resolved on its scores.
    func classScore(_ input: Tensor, _ request: CAMRequest, keep: Set<Int> = [], backwardTo: Int? = nil) throws
        -> (trace: Trace, scores: Tensor, targets: [ResolvedTarget])
    {
        let trace = try forward(input, stopAfter: request.scoreNode, keep: keep, backwardTo: backwardTo)
        let scores = trace[request.scoreNode]!
        return (trace, scores, try request.targets.map { try $0.resolve(scores) })
    }

    /// The request's targets resolved on the image's scores (one forward pass).
    func resolvedTargets(_ input: Tensor, _ request: CAMRequest) throws -> [ResolvedTarget] {
        try classScore(input, request).targets
    }

    /// The target layer's output from a trace, which must be a feature map [1, h, w, c].
    func spatialActivation(_ trace: Trace, _ layerNode: Int) throws -> Tensor {
        guard layerNode >= 0, layerNode < nodes.count else { throw VisualizationError.invalid("node \(layerNode) out of range") }
        guard let a = trace[layerNode], a.rank == 4 else {
            throw RequestError.notSpatial(layer: nodes[layerNode].name, shape: trace[layerNode]?.sampleShape ?? [])
        }
        return a
    }

    /// d score / d input of each target for every image of a batch (images are independent
    /// at inference, so back-propagating Σ_n score(x_n) gives each its own gradient), and
    /// each image's score: one forward pass, one backward pass per target.
    func inputGradients(_ x: Tensor, scoreNode: Int, targets: [ResolvedTarget], guided: Bool = false) throws
        -> [(gradient: Tensor, scores: [Float])]
    {
        let trace = try forward(x, stopAfter: scoreNode, backwardTo: 0)
        let s = trace[scoreNode]!
        return try targets.map { target in
            guard target.weights.count == s.sampleCount else {
                throw VisualizationError.invalid("a target of \(target.weights.count) weights cannot score \(s.sampleCount) outputs")
            }
            let g = try backward(from: scoreNode, seed: target.seed(like: s), to: 0, trace: trace, guidedReLU: guided)
            return (g, (0..<s.batch).map { target.score(s, sample: $0) })
        }
    }
}

// MARK: - Map helpers

/// `items` in consecutive chunks of at most `size` (the last may be shorter): how the
/// perturbation methods batch their forward passes.
func chunks<T>(_ items: [T], of size: Int) -> [ArraySlice<T>] {
    stride(from: 0, to: items.count, by: max(size, 1)).map { items[$0..<min($0 + max(size, 1), items.count)] }
}

/// ReLU(Σ_c w_c A_c) per position of an h × w × c feature map, divided by its maximum:
/// the map of every method that weights whole channels; with `eigenSmooth`, the first
/// principal component of w_c A_c instead of the sum.
func weightedChannelMap(_ a: [Float], weights: [Float], positions: Int, eigenSmooth: Bool = false) -> [Float] {
    let c = weights.count
    if eigenSmooth {
        return principalComponentMap(a.indices.map { a[$0] * weights[$0 % c] }, positions: positions, channels: c)
    }
    var map = [Float](repeating: 0, count: positions)
    for p in 0..<positions {
        var sum: Float = 0
        for ch in 0..<c where weights[ch] != 0 { sum += weights[ch] * a[p * c + ch] }
        map[p] = max(sum, 0)
    }
    normalizeByMax(&map)
    return map
}

/// Divides by the maximum when it is positive (an all-zero map stays zero).
func normalizeByMax(_ map: inout [Float]) {
    let top = map.max() ?? 0
    if top > 0 { for i in map.indices { map[i] /= top } }
}

/// The saliency reduction of a [1, H, W, C] tensor: max over channels of |value|,
/// divided by its maximum.
func saliencyMap(_ t: Tensor) -> [Float] {
    let c = t.shape[t.rank - 1]
    let pixels = t.count / c
    var map = [Float](repeating: 0, count: pixels)
    t.scalars.withUnsafeBufferPointer { s in
        for p in 0..<pixels {
            var m: Float = 0
            for k in 0..<c { m = max(m, abs(s[p * c + k])) }
            map[p] = m
        }
    }
    normalizeByMax(&map)
    return map
}

/// Seeded standard normals: SplitMix64 uniforms through Box–Muller, both of each pair used.
struct SeededNormal {
    var uniforms: SplitMix64
    var spare: Double?

    init(seed: UInt64) { uniforms = SplitMix64(seed: seed) }

    mutating func next() -> Double {
        if let s = spare {
            spare = nil
            return s
        }
        let (a, b) = boxMuller(uniforms.nextOpenUnit(), uniforms.nextOpenUnit())
        spare = b
        return a
    }
}
