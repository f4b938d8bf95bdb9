import Engine
import Foundation

/// How well a saliency map explains a model's decision, measured by perturbing the image
/// where the map says the evidence is and watching the class score: the evaluation a user
/// runs before trusting one attribution method over another.
public enum FaithfulnessMetric: String, Sendable, Codable, CaseIterable {
    /// Deletion AUC (Petsiuk et al. 2018, RISE): pixels set to the baseline (black) in
    /// order of saliency; the area under the score curve. Lower is better.
    case deletion
    /// Insertion AUC (ibid.): from a blurred copy, the original pixels put back in order of
    /// saliency. Higher is better.
    case insertion
    /// Average drop % and increase in confidence (Chattopadhay et al. 2018, Grad-CAM++):
    /// the score of the image multiplied by the map against the image's. Lower drop is better.
    case drop
    /// ROAD (Rong et al. 2022, remove and debias): the most (MoRF) and least (LeRF) relevant
    /// pixels imputed by noisy linear imputation at 10 … 90 %; combined = (LeRF − MoRF) / 2,
    /// as pytorch-grad-cam's ROADCombined. Higher combined is better.
    case road
}

public struct FaithfulnessOptions: Sendable {
    /// Points of the deletion/insertion curves after the first (RISE: one step per 224 pixels).
    public var steps: Int
    /// Perturbed images per forward pass (bounds memory; the result does not depend on it).
    public var batchSize: Int
    /// Insertion's start: the image blurred by a Gaussian of this σ in pixels, (2·radius + 1)
    /// taps, edges replicated (RISE: σ 5, 11 taps).
    public var blurSigma: Double
    public var blurRadius: Int
    /// ROAD's removal fractions (pytorch-grad-cam's percentiles 10 … 90).
    public var roadFractions: [Double]
    /// ROAD's noise: σ of the Gaussian added to imputed values, as a fraction of the image's
    /// value range (ROAD: 0.01 on ImageNet-normalised inputs, whose range is ≈ 4.7, so ≈ 0.002).
    public var roadNoise: Double
    /// Seed of ROAD's noise (SplitMix64 + Box–Muller), so runs repeat.
    public var seed: UInt64

    public init(
        steps: Int = 50, batchSize: Int = 16, blurSigma: Double = 5, blurRadius: Int = 5,
        roadFractions: [Double] = (1...9).map { Double($0) / 10 }, roadNoise: Double = 0.002, seed: UInt64 = 0
    ) {
        self.steps = steps
        self.batchSize = batchSize
        self.blurSigma = blurSigma
        self.blurRadius = blurRadius
        self.roadFractions = roadFractions
        self.roadNoise = roadNoise
        self.seed = seed
    }
}

/// The metrics of one map on one image; nil where not asked for.
public struct FaithfulnessScores: Sendable, Codable, Equatable {
    public var deletionAUC: Double?
    public var insertionAUC: Double?
    /// The score curves behind the two AUCs (step 0 = the untouched start).
    public var deletionCurve: [Double]?
    public var insertionCurve: [Double]?
    /// 100 · max(0, Y − O) / Y, Y the image's score, O the score of image ⊙ map.
    public var averageDrop: Double?
    /// 100 when O > Y, else 0 (averaged over images it is the paper's percentage).
    public var increaseInConfidence: Double?
    /// Mean score change (after − before) over the fractions, most / least relevant removed first.
    public var roadMoRF: Double?
    public var roadLeRF: Double?
    public var roadCombined: Double?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case deletionAUC = "deletion_auc", insertionAUC = "insertion_auc", deletionCurve = "deletion_curve"
        case insertionCurve = "insertion_curve", averageDrop = "average_drop", increaseInConfidence = "increase_in_confidence"
        case roadMoRF = "road_morf", roadLeRF = "road_lerf", roadCombined = "road_combined"
    }
}

/// What the metrics perturb and how its score is read.
public struct FaithfulnessProbe {
    /// The image [1, H, W, C] in the space where pixels are removed, blurred and multiplied:
    /// 8-bit values as floats for a photo (0 = black), or the model input itself.
    public var image: Tensor
    /// Image space → model input (the model's preprocessing; identity when `image` is the input).
    public var toInput: (Tensor) throws -> Tensor
    /// The node whose output is the score (the probabilities, as the papers use) and what
    /// is scored there: a class, or a map's resolved target (a segmentation mask, a negated
    /// output), read on the node's output for every perturbed image.
    public var scoreNode: Int
    public var target: CAMTarget

    public init(image: Tensor, toInput: @escaping (Tensor) throws -> Tensor, scoreNode: Int, classIndex: Int) {
        self.init(image: image, toInput: toInput, scoreNode: scoreNode, target: .classIndex(classIndex))
    }

    public init(image: Tensor, toInput: @escaping (Tensor) throws -> Tensor, scoreNode: Int, target: CAMTarget) {
        self.image = image
        self.toInput = toInput
        self.scoreNode = scoreNode
        self.target = target
    }
}

extension Network {
    /// The asked metrics of `saliency` (H × W, at the image's resolution, any scale: only
    /// its order and, for `drop`, its values in [0, 1] matter) for `probe`.
    public func faithfulness(
        of saliency: [Float], probe: FaithfulnessProbe, metrics: Set<FaithfulnessMetric>,
        options: FaithfulnessOptions = FaithfulnessOptions()
    ) throws -> FaithfulnessScores {
        let x = probe.image
        guard x.rank == 4, x.batch == 1 else {
            throw VisualizationError.invalid("faithfulness takes one image [1, H, W, C], got \(x.shape)")
        }
        let (h, w) = (x.shape[1], x.shape[2])
        guard saliency.count == h * w else {
            throw VisualizationError.invalid("saliency has \(saliency.count) values for a \(h)×\(w) image")
        }
        guard options.steps >= 1, options.batchSize >= 1, options.blurRadius >= 0, options.blurSigma > 0 else {
            throw VisualizationError.invalid("faithfulness options out of range")
        }
        let scorer = BatchScorer(network: self, probe: probe, batchSize: options.batchSize)
        var result = FaithfulnessScores()
        if metrics.contains(.deletion) {
            let curve = try scorer.scores(
                of: perturbationCurve(x, saliency: saliency, from: x, to: Tensor(zeros: x.shape), steps: options.steps))
            result.deletionCurve = curve
            result.deletionAUC = areaUnderCurve(curve)
        }
        if metrics.contains(.insertion) {
            let blurred = gaussianBlur(x, sigma: options.blurSigma, radius: options.blurRadius)
            let curve = try scorer.scores(of: perturbationCurve(x, saliency: saliency, from: blurred, to: x, steps: options.steps))
            result.insertionCurve = curve
            result.insertionAUC = areaUnderCurve(curve)
        }
        if metrics.contains(.drop) {
            var masked = x
            let c = x.shape[3]
            for p in 0..<(h * w) { for k in 0..<c { masked.scalars[p * c + k] *= saliency[p] } }
            let s = try scorer.scores(of: [x, masked])
            let (y, o) = (s[0], s[1])
            result.averageDrop = y > 0 ? 100 * max(0, y - o) / y : 0
            result.increaseInConfidence = o > y ? 100 : 0
        }
        if metrics.contains(.road) {
            let road = try roadScores(x, saliency: saliency, scorer: scorer, options: options)
            result.roadMoRF = road.morf
            result.roadLeRF = road.lerf
            result.roadCombined = (road.lerf - road.morf) / 2
        }
        return result
    }
}

/// Scores of many images for one target, `batchSize` images per forward pass.
struct BatchScorer {
    let network: Network
    let probe: FaithfulnessProbe
    let batchSize: Int

    func scores(of images: [Tensor]) throws -> [Double] {
        var out: [Double] = []
        out.reserveCapacity(images.count)
        var start = 0
        while start < images.count {
            let chunk = images[start..<min(images.count, start + batchSize)]
            let batch = try probe.toInput(stackedBatch(Array(chunk)))
            let s = try network.forward(batch, stopAfter: probe.scoreNode)[probe.scoreNode]!
            // A class or a resolved target: the same weights for every image.
            let target = try probe.target.resolve(s)
            for n in 0..<s.batch { out.append(Double(target.score(s, sample: n))) }
            start += chunk.count
        }
        return out
    }
}

/// Images [1, H, W, C] of one shape as one batch [n, H, W, C].
func stackedBatch(_ images: [Tensor]) -> Tensor {
    var scalars: [Float] = []
    scalars.reserveCapacity(images.reduce(0) { $0 + $1.count })
    for image in images { scalars.append(contentsOf: image.scalars) }
    return Tensor(shape: [images.count] + Array(images[0].shape.dropFirst()), scalars: scalars)
}

/// The trapezoid rule over a curve on [0, 1] (RISE's `auc`).
func areaUnderCurve(_ y: [Double]) -> Double {
    guard y.count > 1 else { return y.first ?? 0 }
    return (y.reduce(0, +) - (y.first! + y.last!) / 2) / Double(y.count - 1)
}

/// Pixel indices by saliency, highest first; equal values in index order (a stable sort, as
/// NumPy's `argsort(-s, kind="stable")`).
func saliencyOrder(_ saliency: [Float]) -> [Int] {
    saliency.indices.sorted { saliency[$0] != saliency[$1] ? saliency[$0] > saliency[$1] : $0 < $1 }
}

/// RISE's curve: start from `from`, then after each step of ⌈HW / steps⌉ pixels (in order of
/// saliency) those pixels take `to`'s values; the images of every step, the start included.
func perturbationCurve(_ x: Tensor, saliency: [Float], from start: Tensor, to target: Tensor, steps: Int) -> [Tensor] {
    let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
    let pixels = h * w
    let perStep = (pixels + steps - 1) / steps
    let count = (pixels + perStep - 1) / perStep
    let order = saliencyOrder(saliency)
    var current = start
    var images = [current]
    for i in 0..<count {
        for p in order[(i * perStep)..<min(pixels, (i + 1) * perStep)] {
            for k in 0..<c { current.scalars[p * c + k] = target.scalars[p * c + k] }
        }
        images.append(current)
    }
    return images
}

/// A separable Gaussian blur of each channel; edges replicated.
func gaussianBlur(_ x: Tensor, sigma: Double, radius: Int) -> Tensor {
    let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
    var taps = (-radius...radius).map { exp(-Double($0 * $0) / (2 * sigma * sigma)) }
    let total = taps.reduce(0, +)
    taps = taps.map { $0 / total }
    // One axis at a time: `step` is the distance between neighbours along it, `size` its length.
    func blurred(_ src: [Double], along step: Int, size: Int, position: (Int) -> Int) -> [Double] {
        var out = [Double](repeating: 0, count: src.count)
        for i in src.indices {
            let at = position(i)
            var s = 0.0
            for (t, weight) in taps.enumerated() {
                let q = min(size - 1, max(0, at + t - radius))
                s += weight * src[i + (q - at) * step]
            }
            out[i] = s
        }
        return out
    }
    let rows = blurred(x.scalars.map(Double.init), along: c, size: w) { ($0 / c) % w }
    let both = blurred(rows, along: w * c, size: h) { ($0 / c) / w }
    return Tensor(shape: x.shape, scalars: both.map { Float($0) })
}
