import Engine
import Foundation

/// `lucid` feature visualisation: regularised gradient ascent after Olah,
/// Mordvintsev & Schubert, "Feature Visualization" (Distill, 2017) and the
/// defaults of the lucid library (`render_vis` with `param.image(size)`):
///
/// - a Fourier image with 1/f scaling and decorrelated colour, squashed by a
///   sigmoid to RGB in [0, 1] (`LucidImage.swift`, `LucidFFT.swift`);
/// - each step, random pad/jitter/scale/rotate/jitter (`LucidTransforms.standard`);
/// - the RGB image is mapped to the model's input by `LucidInputMap`;
/// - Adam (TensorFlow's update form) on the Fourier coefficients, maximising
///   the objective.
///
/// Batching: N objectives are N images in one batch; image n's objective reads
/// only sample n, so one forward/backward per step serves all of them, and each
/// image's random start and transforms come from its own seed — rendering a
/// filter alone or inside a batch gives the same picture.
///
/// Where this differs from lucid (on purpose, or for lack of a variable-size model):
/// - the transform chain is composed into one affine map and sampled bilinearly
///   once; outside the image everything is the pad (lucid's rotation fills 0);
///   the result is centre-cropped/padded to the network's input size;
/// - lucid draws one transform per batch, here each image draws its own;
/// - for odd widths the spectrum has w/2+1 columns (NumPy), lucid keeps w/2+2;
/// - the objective values reported are those of the transformed image seen at
///   that step (noisy from step to step), before the update.
///
/// Cost (EfficientNet-Lite0, 224×224, release build, 2 cores, shared machine):
/// ≈ 0.6–0.8 s per step for a batch of 4 images, so 256 steps ≈ 3 min and the
/// default 512 ≈ 6 min for 4 filters; the Fourier transforms are ~12 % of it.
public struct LucidParameters: Sendable {
    /// Optimisation steps. Default 512 (lucid's `render_vis` default). Cost per step
    /// ≈ one forward + backward of the network up to the layer for the batch, plus
    /// ~2×34 M multiply-adds per colour channel and image at 224×224 for the Fourier
    /// transforms. 256 is usually enough to see the pattern.
    public var steps: Int = 512
    /// Image side (height, width); nil: the network's input size (required when it is variable).
    public var size: (height: Int, width: Int)? = nil
    public var learningRate: Float = 0.05
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// Exponent of the 1/f spectrum scaling.
    public var decayPower: Float = 1
    /// Standard deviation of the random starting coefficients (lucid: 0.01).
    public var initStd: Float = 0.01
    /// Use lucid's ImageNet colour decorrelation (else the three channels are independent).
    public var decorrelateColour: Bool = true
    public var transforms: LucidTransforms = .standard
    public var seed: UInt64 = 0

    public init(
        steps: Int = 512, size: (height: Int, width: Int)? = nil, learningRate: Float = 0.05,
        transforms: LucidTransforms = .standard, seed: UInt64 = 0
    ) {
        self.steps = steps
        self.size = size
        self.learningRate = learningRate
        self.transforms = transforms
        self.seed = seed
    }
}

/// What one image maximises, read from the chosen node's output.
public enum LucidObjective: Sendable, Equatable, Hashable {
    /// Mean over H, W of one channel (lucid `channel`; the default). On a flat
    /// [n, units] output it is that unit.
    case channel(Int)
    /// One channel at the spatial centre (h/2, w/2) (lucid `neuron`).
    case neuron(Int)
    /// One unit of a flat [n, units] output — use the logits (pre-softmax) node for a class.
    case unit(Int)

    var index: Int {
        switch self {
        case .channel(let k), .neuron(let k), .unit(let k): return k
        }
    }
}

public struct LucidResult: Sendable {
    /// The optimised images, RGB in [0, 1], [n, h, w, 3] (before the model's preprocessing).
    public var images: Tensor
    /// Each image's objective at each step, on that step's transformed image, before
    /// the update: objectiveHistory[step][n].
    public var objectiveHistory: [[Float]]
}

/// One image's optimisation state.
private struct LucidState {
    var coefficients: [Float]  // [2, 3, h, fw]: re then im
    var m: [Float]
    var v: [Float]
    var rng: SplitMix64

    /// TensorFlow's Adam: m, v moments; θ −= lr_t · m / (sqrt(v) + ε), lr_t bias-corrected.
    mutating func adamStep(_ grad: [Float], lr: Float, beta1 b1: Float, beta2 b2: Float, epsilon eps: Float) {
        coefficients.withUnsafeMutableBufferPointer { c in
            m.withUnsafeMutableBufferPointer { m in
                v.withUnsafeMutableBufferPointer { v in
                    for q in 0..<grad.count {
                        let gq = grad[q]
                        m[q] = b1 * m[q] + (1 - b1) * gq
                        v[q] = b2 * v[q] + (1 - b2) * gq * gq
                        c[q] -= lr * m[q] / (v[q].squareRoot() + eps)
                    }
                }
            }
        }
    }
}

extension Network {
    /// The seed of image n: lucid images are reproducible per (seed, objective).
    static func lucidSeed(_ seed: UInt64, _ objective: LucidObjective) -> UInt64 {
        let kind: UInt64
        switch objective {
        case .channel: kind = 1
        case .neuron: kind = 2
        case .unit: kind = 3
        }
        var g = SplitMix64(seed: seed ^ (kind &* 0xD6E8_FEB8_6659_FD93) ^ (UInt64(objective.index) &* 0x9E37_79B9_7F4A_7C15))
        return g.next()
    }

    /// Renders one image per objective, all read from node `layerNode`, in one batch.
    ///
    /// `progress` is called after every step with each image's objective (in
    /// `losses`; higher is better); returning false cancels (throws `VisualizationError.cancelled`).
    public func lucidVisualization(
        layerNode: Int, objectives: [LucidObjective], inputMap: LucidInputMap,
        parameters: LucidParameters,
        progress: (AscentProgress) -> Bool = { _ in true }
    ) throws -> LucidResult {
        guard !objectives.isEmpty else { throw VisualizationError.invalid("no objectives") }
        guard layerNode > 0, layerNode < nodes.count else { throw VisualizationError.invalid("node \(layerNode) out of range") }
        guard inputShape.count == 3, inputShape[2] == 3 || inputShape[2] == -1 else {
            throw VisualizationError.invalid("lucid needs an RGB image input, the model's is \(inputShape)")
        }
        let fixed = inputShape[0] != -1 && inputShape[1] != -1
        guard fixed || parameters.size != nil else {
            throw VisualizationError.invalid("the model takes any image size: give the lucid image size")
        }
        let (oh, ow) = fixed ? (inputShape[0], inputShape[1]) : parameters.size!
        let (h, w) = parameters.size ?? (oh, ow)
        guard h >= 2, w >= 2, parameters.steps >= 1 else {
            throw VisualizationError.invalid("lucid needs an image of at least 2×2 and ≥ 1 step")
        }
        let n = objectives.count
        let image = LucidFourierImage(
            height: h, width: w, decayPower: parameters.decayPower,
            decorrelateColour: parameters.decorrelateColour)
        var states: [LucidState] = objectives.map { obj in
            var init_ = SplitMix64(seed: Self.lucidSeed(parameters.seed, obj))
            let count = image.coefficientCount
            var c = [Float](repeating: 0, count: count)
            for i in 0..<count { c[i] = parameters.initStd * lucidGaussian(&init_) }
            return LucidState(
                coefficients: c, m: [Float](repeating: 0, count: count), v: [Float](repeating: 0, count: count),
                rng: SplitMix64(seed: init_.next()))
        }
        let map = inputMap
        func render(_ s: LucidState) -> [Float] { image.rgb(s.coefficients) }

        var history: [[Float]] = []
        var rgbs = [[Float]](repeating: [], count: n)
        for step in 1...parameters.steps {
            // Forward: parameters → RGB → transform → model input.
            var warps: [LucidWarp] = []
            var input = Tensor(zeros: [n, oh, ow, 3])
            for i in 0..<n {
                rgbs[i] = render(states[i])
                let warp = parameters.transforms.draw(
                    imageHeight: h, imageWidth: w, outputHeight: oh, outputWidth: ow,
                    using: &states[i].rng)
                warps.append(warp)
                let warped = warp.apply(rgbs[i], channels: 3)
                let base = i * oh * ow * 3
                for p in 0..<(oh * ow) {
                    for k in 0..<3 {
                        input.scalars[base + p * 3 + k] = warped[p * 3 + map.source(k)] * map.scale[k] + map.offset[k]
                    }
                }
            }
            let trace = try forward(input, stopAfter: layerNode, backwardTo: 0)
            let out = trace[layerNode]!
            let (seed, values) = try lucidSeedGradient(out, objectives: objectives, layer: nodes[layerNode].name)
            history.append(values)
            let g = try backward(from: layerNode, seed: seed, to: 0, trace: trace)
            // Backward: model input → RGB image → sigmoid → colour → Fourier coefficients.
            let t = Float(step)
            let lrT = parameters.learningRate * (1 - pow(parameters.beta2, t)).squareRoot() / (1 - pow(parameters.beta1, t))
            for i in 0..<n {
                var gWarped = [Float](repeating: 0, count: oh * ow * 3)
                let base = i * oh * ow * 3
                for p in 0..<(oh * ow) {
                    for k in 0..<3 { gWarped[p * 3 + map.source(k)] = g.scalars[base + p * 3 + k] * map.scale[k] }
                }
                // Minimise −objective: the loss gradient is the negated ascent gradient.
                let grad = image.gradient(rgb: rgbs[i], rgbGradient: warps[i].adjoint(gWarped, channels: 3)).map { -$0 }
                states[i].adamStep(grad, lr: lrT, beta1: parameters.beta1, beta2: parameters.beta2, epsilon: parameters.epsilon)
            }
            if !progress(AscentProgress(step: step, steps: parameters.steps, losses: values)) {
                throw VisualizationError.cancelled
            }
        }
        var images = Tensor(zeros: [n, h, w, 3])
        for i in 0..<n {
            let rgb = render(states[i])
            for p in 0..<rgb.count { images.scalars[i * h * w * 3 + p] = rgb[p] }
        }
        return LucidResult(images: images, objectiveHistory: history)
    }
}

/// The seed gradient d(objective_n)/d(output) and each image's objective value.
func lucidSeedGradient(_ out: Tensor, objectives: [LucidObjective], layer: String) throws -> (Tensor, [Float]) {
    var seed = Tensor(zeros: out.shape)
    var values = [Float](repeating: 0, count: objectives.count)
    let c = out.shape.last!
    let per = out.sampleCount
    let positions = per / c
    for (n, obj) in objectives.enumerated() {
        let k = obj.index
        guard k >= 0, k < c else {
            throw VisualizationError.invalid("\(obj) is out of range: layer '\(layer)' has \(c) channels (0...\(c - 1))")
        }
        switch obj {
        case .channel:
            var sum: Float = 0
            for p in 0..<positions {
                sum += out.scalars[n * per + p * c + k]
                seed.scalars[n * per + p * c + k] = 1 / Float(positions)
            }
            values[n] = sum / Float(positions)
        case .neuron:
            guard out.rank == 4 else { throw RequestError.notSpatial(layer: layer, shape: out.sampleShape) }
            let (oh, ow) = (out.shape[1], out.shape[2])
            let i = n * per + ((oh / 2) * ow + ow / 2) * c + k
            values[n] = out.scalars[i]
            seed.scalars[i] = 1
        case .unit:
            guard out.rank == 2 else {
                throw VisualizationError.invalid("a unit objective needs a flat [n, units] output; layer '\(layer)' has \(out.sampleShape)")
            }
            values[n] = out.scalars[n * per + k]
            seed.scalars[n * per + k] = 1
        }
    }
    return (seed, values)
}

/// A standard normal sample (Box–Muller) from the seeded generator.
func lucidGaussian(_ rng: inout SplitMix64) -> Float {
    let u1 = max(rng.nextUnit(), 1e-300)
    return Float(boxMuller(u1, rng.nextUnit()).0)
}
