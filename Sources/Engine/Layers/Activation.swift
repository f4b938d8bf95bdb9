import Foundation

/// An element-wise activation node: Keras' `Activation` layer, the `ReLU` /
/// `LeakyReLU` / `Softmax` layers, or the activation a Keras layer fuses
/// (`Conv2D(activation="relu")` becomes convolution + this node).
///
/// Kernels: ReLU (all of Keras' variants) and softmax are plain Swift loops —
/// they are memory-bound, and writing them out is how they match Keras'
/// branch-by-branch definition exactly, boundaries included. Sigmoid, tanh,
/// swish and hard-swish run forward on oneDNN's vectorised eltwise kernels;
/// sigmoid's and tanh's backward passes are closed forms of the output
/// (y(1−y), 1−y²), plain multiplications.
public final class Activation: Layer {
    public let name: String
    public let kind: String
    public let function: ActivationFunction
    private let eltwise: DNNLEltwise?
    /// Swish's backward needs σ(x): its own kernel, so its oneDNN plan is made once.
    private let swishSigmoid: DNNLEltwise?
    let relu: ReLUSpec?

    public init(name: String, function: ActivationFunction, kind: String = "Activation") {
        self.name = name
        self.function = function
        self.kind = kind
        switch function {
        case .sigmoid: eltwise = .logistic
        case .tanh: eltwise = .tanh
        // EfficientNet's swish layers carry most of its elements: scalar exp
        // per element took 40 % of a forward pass.
        case .swish: eltwise = .swish
        // MobileNetV3's hard-swish layers: the same vectorised kernel as the
        // post-op that fuses them into a convolution.
        case .hardSwish: eltwise = .hardSwish
        default: eltwise = nil
        }
        swishSigmoid = function == .swish ? .logistic : nil
        if case let .relu(maxValue, negativeSlope, threshold) = function {
            relu = ReLUSpec(maxValue: maxValue, negativeSlope: negativeSlope, threshold: threshold)
        } else {
            relu = nil
        }
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        if function == .softmax, s.isEmpty { throw mismatch("softmax needs at least one axis") }
        return s
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        switch function {
        case .linear:
            return x
        case .relu:
            return Tensor(shape: x.shape, scalars: relu!.forward(x.scalars))
        case .sigmoid, .tanh, .swish, .hardSwish:
            return Tensor(shape: x.shape, scalars: try eltwise!.forward(x.scalars))
        case .elu, .gelu, .selu, .softplus, .hardSigmoid, .hardSigmoidKeras2:
            let f = Self.smooth(function)
            return Tensor(shape: x.shape, scalars: x.scalars.map { f.value($0) })
        case .softmax:
            guard x.rank >= 2, let last = x.shape.last, last > 0 || x.count == 0 else {
                throw mismatch("softmax needs a non-empty last axis, got \(x.shape)")
            }
            return Tensor(shape: x.shape, scalars: Self.softmax(x.scalars, axis: last))
        }
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard output.shape == x.shape, outputGradient.shape == x.shape else {
            throw mismatch("input \(x.shape), output \(output.shape) and output gradient \(outputGradient.shape) must match")
        }
        let g = outputGradient.scalars
        let n = x.count
        let dx: [Float]
        switch function {
        case .linear:
            return [outputGradient]
        case .relu:
            dx = relu!.backward(x.scalars, g)
        case .swish:
            // d(x·σ)/dx = σ(1 + x(1 − σ)), with σ from the vectorised kernel.
            let sig = try swishSigmoid!.forward(x.scalars)
            dx = x.scalars.withUnsafeBufferPointer { xb in
                sig.withUnsafeBufferPointer { sb in
                    g.withUnsafeBufferPointer { gb in
                        uninitializedFloats(n) { d in
                            let xs = SharedPointer(xb)
                            let ss = SharedPointer(sb)
                            let gs = SharedPointer(gb)
                            let ds = SharedPointer(d)
                            parallelFor(n) { r in
                                let x = xs.p
                                let s = ss.p
                                let g = gs.p
                                let d = ds.p
                                for i in r { d[i] = g[i] * (s[i] * (1 + x[i] * (1 - s[i]))) }
                            }
                        }
                    }
                }
            }
        case .elu, .gelu, .selu, .softplus, .hardSigmoid, .hardSigmoidKeras2, .hardSwish:
            let f = Self.smooth(function)
            dx = zip(x.scalars, g).map { f.derivative($0) * $1 }
        case .sigmoid:
            // dσ/dx = σ(1 − σ), from the output.
            dx = Self.gradientFromOutput(output.scalars, g) { y in y * (1 - y) }
        case .tanh:
            // d tanh/dx = 1 − tanh², from the output.
            dx = Self.gradientFromOutput(output.scalars, g) { y in 1 - y * y }
        case .softmax:
            // Jacobian-vector product per row: dx = y ⊙ (g − ⟨g, y⟩).
            guard x.rank >= 2 else { throw mismatch("softmax needs a non-empty last axis, got \(x.shape)") }
            let c = x.shape[x.rank - 1]
            dx = output.scalars.withUnsafeBufferPointer { y in
                g.withUnsafeBufferPointer { g in
                    uninitializedFloats(n) { d in
                        var base = 0
                        while base < n {
                            var dot: Float = 0
                            for j in base..<(base + c) { dot += g[j] * y[j] }
                            for j in base..<(base + c) { d[j] = y[j] * (g[j] - dot) }
                            base += c
                        }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }

    /// g · f′ for an activation whose derivative is a function of its output
    /// (σ, tanh), in parallel chunks.
    @inline(__always)
    private static func gradientFromOutput(
        _ output: [Float], _ g: [Float],
        _ derivative: @Sendable (Float) -> Float
    ) -> [Float] {
        output.withUnsafeBufferPointer { y in
            g.withUnsafeBufferPointer { g in
                uninitializedFloats(g.count) { d in
                    let ys = SharedPointer(y)
                    let gs = SharedPointer(g)
                    let ds = SharedPointer(d)
                    parallelFor(g.count) { r in
                        let y = ys.p
                        let g = gs.p
                        let d = ds.p
                        for i in r { d[i] = g[i] * derivative(y[i]) }
                    }
                }
            }
        }
    }

    /// A smooth or piecewise-linear activation and its derivative, each as
    /// Keras/TensorFlow define it (at kinks, the one-sided value TensorFlow's
    /// registered gradient takes: relu6' = [0 < x < 6], clip' = [lo ≤ x ≤ hi]).
    static func smooth(_ function: ActivationFunction) -> (value: (Float) -> Float, derivative: (Float) -> Float) {
        func sigmoid(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }
        switch function {
        case .swish:
            return (
                { $0 * sigmoid($0) },
                { x in
                    let s = sigmoid(x)
                    return s * (1 + x * (1 - s))
                }
            )
        case .elu(let alpha):
            return ({ $0 > 0 ? $0 : alpha * (Foundation.exp($0) - 1) }, { $0 > 0 ? 1 : alpha * Foundation.exp($0) })
        case .gelu:
            // The exact form (Keras' default, approximate=False).
            let invSqrt2: Float = 0.70710678118654752
            let invSqrt2Pi: Float = 0.39894228040143268
            return (
                { 0.5 * $0 * (1 + erf($0 * invSqrt2)) },
                { x in 0.5 * (1 + erf(x * invSqrt2)) + x * invSqrt2Pi * Foundation.exp(-0.5 * x * x) }
            )
        case .selu:
            let alpha: Float = 1.67326324
            let scale: Float = 1.05070098
            return (
                { $0 > 0 ? scale * $0 : scale * alpha * (Foundation.exp($0) - 1) },
                { $0 > 0 ? scale : scale * alpha * Foundation.exp($0) }
            )
        case .softplus:
            // log(1 + eˣ) without overflow; its derivative is σ(x).
            return ({ x in max(x, 0) + Foundation.log1p(Foundation.exp(-abs(x))) }, { sigmoid($0) })
        case .hardSigmoid:
            return ({ relu6($0 + 3) / 6 }, { x in x + 3 > 0 && x + 3 < 6 ? 1 / 6 : 0 })
        case .hardSigmoidKeras2:
            return (
                { Swift.min(Swift.max($0 * 0.2 + 0.5, 0), 1) },
                { x in
                    let v = x * 0.2 + 0.5
                    return v >= 0 && v <= 1 ? 0.2 : 0
                }
            )
        case .hardSwish:
            return (
                { $0 * (relu6($0 + 3) / 6) },
                { x in relu6(x + 3) / 6 + (x + 3 > 0 && x + 3 < 6 ? x / 6 : 0) }
            )
        default:
            return ({ $0 }, { _ in 1 })
        }
    }

    private static func relu6(_ x: Float) -> Float { Swift.min(Swift.max(x, 0), 6) }

    /// Numerically stable softmax over consecutive rows of length `axis`.
    static func softmax(_ x: [Float], axis c: Int) -> [Float] {
        guard c > 0 else { return [Float](repeating: 0, count: x.count) }
        return x.withUnsafeBufferPointer { x in
            uninitializedFloats(x.count) { y in
                var base = 0
                while base < x.count {
                    var m = -Float.infinity
                    for j in base..<(base + c) { m = max(m, x[j]) }
                    var sum: Float = 0
                    for j in base..<(base + c) {
                        let e = Foundation.exp(x[j] - m)
                        y[j] = e
                        sum += e
                    }
                    let inv = 1 / sum
                    for j in base..<(base + c) { y[j] *= inv }
                    base += c
                }
            }
        }
    }
}

/// Keras' ReLU, exactly as `keras.activations.relu` (Keras 3) and
/// `tf.keras.backend.relu` (Keras 2) compute it, branch for branch:
///
///     if slope != 0 and max is None and threshold == 0: leaky_relu(x)  = x > 0 ? x : slope·x
///     p = threshold != 0 ? x·[x > threshold] : (max == 6 ? relu6(x) : relu(x))
///     if max given (and not already relu6): p = clip(p, 0, max)
///     if slope != 0: p −= slope · relu(threshold − x)
///
/// so x == threshold gives 0, and a negative threshold without max passes
/// negative x through. Derivatives follow TensorFlow's registered gradients:
/// relu' = [x > 0], relu6' = [0 < x < 6], clip' = [0 ≤ p ≤ max], leaky' = x > 0 ? 1 : slope.
struct ReLUSpec: Sendable {
    let maxValue: Float?
    let slope: Float
    let threshold: Float

    init(maxValue: Float?, negativeSlope: Float, threshold: Float) {
        self.maxValue = maxValue
        self.slope = negativeSlope
        self.threshold = threshold
    }

    private var isLeaky: Bool { slope != 0 && maxValue == nil && threshold == 0 }
    var isPlain: Bool { slope == 0 && maxValue == nil && threshold == 0 }
    /// MobileNet's and EfficientNet-Lite's activation: its own loops, because the general
    /// `value`/`derivative` branch per element on the optional clip and do not vectorise.
    var isReLU6: Bool { slope == 0 && maxValue == 6 && threshold == 0 }
    /// Where the derivative is 1 can be read off the output (y > 0, or 0 < y < 6): the
    /// input need not be kept for the backward pass.
    var isDifferentiableFromOutput: Bool { isPlain || isReLU6 }

    /// The gradient at the input of `affine → self` from this activation's output `y` alone:
    /// g · 1[derivative ≠ 0] (with `guided`, negatives dropped, as Guided Backpropagation
    /// does at every ReLU), times the affine map's per-channel scale — one pass where the two
    /// layers' backward passes take two, the same products in the same order.
    func backwardThroughAffine(output y: [Float], gradient: [Float], scale: [Float], guided: Bool) -> [Float] {
        let c = scale.count
        let relu6 = isReLU6
        return y.withUnsafeBufferPointer { yb in
            gradient.withUnsafeBufferPointer { gb in
                scale.withUnsafeBufferPointer { sb in
                    uninitializedFloats(yb.count) { db in
                        let (ys, gs, ss, ds) = (SharedPointer(yb), SharedPointer(gb), SharedPointer(sb), SharedPointer(db))
                        parallelFor(yb.count / c, grain: max(1, (1 << 15) / c)) { rows in
                            let (y, g, sc, d) = (ys.p, gs.p, ss.p, ds.p)
                            // One loop per case, so each inner loop is branch-free and vectorises.
                            for base in stride(from: rows.lowerBound * c, to: rows.upperBound * c, by: c) {
                                let (y, g, d) = (y + base, g + base, d + base)
                                switch (relu6, guided) {
                                case (false, false):
                                    for k in 0..<c {
                                        let gi = g[k]
                                        d[k] = (y[k] > 0 ? gi : 0) * sc[k]
                                    }
                                case (true, false):
                                    for k in 0..<c {
                                        let (yi, gi) = (y[k], g[k])
                                        d[k] = (yi > 0 && yi < 6 ? gi : 0) * sc[k]
                                    }
                                case (false, true):
                                    for k in 0..<c {
                                        let gi = g[k]
                                        d[k] = Swift.max(y[k] > 0 ? gi : 0, 0) * sc[k]
                                    }
                                case (true, true):
                                    for k in 0..<c {
                                        let (yi, gi) = (y[k], g[k])
                                        d[k] = Swift.max(yi > 0 && yi < 6 ? gi : 0, 0) * sc[k]
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @inline(__always)
    func value(_ x: Float) -> Float {
        if isLeaky { return x > 0 ? x : slope * x }
        var p: Float
        var clip = maxValue
        if threshold != 0 {
            p = x > threshold ? x : 0
        } else if maxValue == 6 {
            p = Swift.min(Swift.max(x, 0), 6)
            clip = nil
        } else {
            p = Swift.max(x, 0)
        }
        if let m = clip { p = Swift.min(Swift.max(p, 0), m) }
        if slope != 0 { p -= slope * Swift.max(-x + threshold, 0) }
        return p
    }

    @inline(__always)
    func derivative(_ x: Float) -> Float {
        if isLeaky { return x > 0 ? 1 : slope }
        var d: Float
        var p: Float
        var clip = maxValue
        if threshold != 0 {
            d = x > threshold ? 1 : 0
            p = x > threshold ? x : 0
        } else if maxValue == 6 {
            d = x > 0 && x < 6 ? 1 : 0
            p = x
            clip = nil
        } else {
            d = x > 0 ? 1 : 0
            p = Swift.max(x, 0)
        }
        if let m = clip, !(p >= 0 && p <= m) { d = 0 }
        if slope != 0, -x + threshold > 0 { d += slope }
        return d
    }

    // Both passes are memory-bound streams (VGG16 block1 at batch 16: 205 MB in,
    // 205 MB out): split over the compute threads; each chunk's loop is a
    // compare + select that the compiler vectorises.

    func forward(_ input: [Float]) -> [Float] {
        input.withUnsafeBufferPointer { xb in
            uninitializedFloats(xb.count) { yb in
                let xs = SharedPointer(xb)
                let ys = SharedPointer(yb)
                parallelFor(xb.count) { r in
                    let x = xs.p
                    let y = ys.p
                    if isPlain {
                        for i in r { y[i] = x[i] > 0 ? x[i] : 0 }
                    } else if isReLU6 {
                        for i in r { y[i] = Swift.min(Swift.max(x[i], 0), 6) }
                    } else {
                        for i in r { y[i] = value(x[i]) }
                    }
                }
            }
        }
    }

    func backward(_ input: [Float], _ gradient: [Float]) -> [Float] {
        input.withUnsafeBufferPointer { xb in
            gradient.withUnsafeBufferPointer { gb in
                uninitializedFloats(xb.count) { db in
                    let xs = SharedPointer(xb)
                    let gs = SharedPointer(gb)
                    let ds = SharedPointer(db)
                    parallelFor(xb.count) { r in
                        let x = xs.p
                        let g = gs.p
                        let d = ds.p
                        if isPlain {
                            // Load g unconditionally: a select vectorises, a
                            // conditional load is a mispredicted branch per element.
                            for i in r {
                                let gi = g[i]
                                d[i] = x[i] > 0 ? gi : 0
                            }
                        } else if isReLU6 {
                            for i in r {
                                let gi = g[i]
                                let xi = x[i]
                                d[i] = xi > 0 && xi < 6 ? gi : 0
                            }
                        } else {
                            for i in r { d[i] = g[i] * derivative(x[i]) }
                        }
                    }
                }
            }
        }
    }
}

/// Softmax of one vector of logits (max subtracted first, as Keras does).
public func softmax(_ logits: [Float]) -> [Float] { Activation.softmax(logits, axis: logits.count) }
