/// `(x − center) · scale + offset`, each a single number or one per channel
/// (the last axis). One kernel for the Keras layers that only shift and scale:
/// `Rescaling` (scale, offset), `Normalization` ((x − mean) / √variance),
/// ConvNeXt's `LayerScale` (x · γ), and arithmetic with a constant written on
/// tensors (`x + 3.0`, `x * (1/6)`: `TFOpLambda` in Keras 2 files, operation
/// layers in Keras 3 files). `kind` names which, for summaries.
/// Backward: the gradient times scale.
public final class ChannelAffine: Layer {
    public let name: String
    public let kind: String
    public let center: [Float]
    public let scale: [Float]
    public let offset: [Float]

    /// Each vector has 1 or C entries.
    public init(name: String, kind: String, center: [Float] = [0], scale: [Float] = [1], offset: [Float] = [0]) {
        self.name = name
        self.kind = kind
        self.center = center
        self.scale = scale
        self.offset = offset
    }

    /// Scalar convenience: `x · scale + offset`.
    public convenience init(name: String, kind: String, scale: Float, offset: Float = 0) {
        self.init(name: name, kind: kind, scale: [scale], offset: [offset])
    }

    public var parameterCount: Int {
        [center, scale, offset].reduce(0) { $0 + ($1.count > 1 ? $1.count : 0) }
    }

    /// The channel count the vectors need (nil: all are single numbers).
    private var channels: Int? { [center.count, scale.count, offset.count].first { $0 > 1 } }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        let counts = Set([center.count, scale.count, offset.count].filter { $0 > 1 })
        guard !(center.isEmpty || scale.isEmpty || offset.isEmpty), counts.count <= 1 else {
            throw mismatch("center, scale and offset must each have 1 or C entries, got \(center.count), \(scale.count), \(offset.count)")
        }
        if let c = channels {
            guard let last = s.last, last == c || last == -1 else {
                throw mismatch("\(c) per-channel values do not fit the input's last axis (input \(s))")
            }
        }
        return s
    }

    private func checkChannels(_ x: Tensor) throws {
        if let c = channels, x.shape.last != c {
            throw mismatch("\(c) per-channel values do not fit the input's last axis (input \(x.shape))")
        }
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        try checkChannels(x)
        // Per-channel vectors are expanded to c entries once; the loop runs row by row.
        let c = channels ?? 1
        func expand(_ v: [Float]) -> [Float] { v.count == c ? v : [Float](repeating: v[0], count: c) }
        let (m, sc, o) = (expand(center), expand(scale), expand(offset))
        let y: [Float] = x.scalars.withUnsafeBufferPointer { xb in
            uninitializedFloats(xb.count) { yb in
                let (xs, ys) = (SharedPointer(xb), SharedPointer(yb))
                m.withUnsafeBufferPointer { mb in
                    sc.withUnsafeBufferPointer { sb in
                        o.withUnsafeBufferPointer { ob in
                            let (ms, ss, os) = (SharedPointer(mb), SharedPointer(sb), SharedPointer(ob))
                            parallelFor(xb.count / c, grain: max(1, (1 << 15) / c)) { rows in
                                let (x, y, m, sc, o) = (xs.p, ys.p, ms.p, ss.p, os.p)
                                for base in stride(from: rows.lowerBound * c, to: rows.upperBound * c, by: c) {
                                    let (x, y) = (x + base, y + base)
                                    for k in 0..<c { y[k] = (x[k] - m[k]) * sc[k] + o[k] }
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    /// `forward` then `relu`, in one pass over memory, split over the compute
    /// threads: an inference plan's BatchNormalization → ReLU where no
    /// convolution comes before (DenseNet's and ResNetV2's pre-activations).
    /// The same operations in the same order as the two layers, so the same bits.
    func forward(_ inputs: [Tensor], then relu: ReLUSpec) throws -> Tensor {
        let x = try singleInput(inputs)
        try checkChannels(x)
        let c = channels ?? 1
        func expand(_ v: [Float]) -> [Float] { v.count == c ? v : [Float](repeating: v[0], count: c) }
        let (m, sc, o) = (expand(center), expand(scale), expand(offset))
        let (plain, relu6) = (relu.isPlain, relu.isReLU6)
        let y: [Float] = x.scalars.withUnsafeBufferPointer { xb in
            uninitializedFloats(xb.count) { yb in
                let xs = SharedPointer(xb)
                let ys = SharedPointer(yb)
                parallelFor(xb.count / c, grain: max(1, (1 << 15) / c)) { rows in
                    let x = xs.p
                    let y = ys.p
                    // One loop per kind, so each inner loop is branch-free and vectorises.
                    for base in stride(from: rows.lowerBound * c, to: rows.upperBound * c, by: c) {
                        let (x, y) = (x + base, y + base)
                        if plain {
                            for k in 0..<c {
                                let v = (x[k] - m[k]) * sc[k] + o[k]
                                y[k] = v > 0 ? v : 0
                            }
                        } else if relu6 {
                            for k in 0..<c { y[k] = Swift.min(Swift.max((x[k] - m[k]) * sc[k] + o[k], 0), 6) }
                        } else {
                            for k in 0..<c { y[k] = relu.value((x[k] - m[k]) * sc[k] + o[k]) }
                        }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard outputGradient.shape == x.shape else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        let c = scale.count
        let dx: [Float] = outputGradient.scalars.withUnsafeBufferPointer { gb in
            uninitializedFloats(gb.count) { db in
                let (gs, ds) = (SharedPointer(gb), SharedPointer(db))
                scale.withUnsafeBufferPointer { sb in
                    let ss = SharedPointer(sb)
                    parallelFor(gb.count / c, grain: max(1, (1 << 15) / c)) { rows in
                        let (g, d, sc) = (gs.p, ds.p, ss.p)
                        for base in stride(from: rows.lowerBound * c, to: rows.upperBound * c, by: c) {
                            let (g, d) = (g + base, d + base)
                            for k in 0..<c { d[k] = g[k] * sc[k] }
                        }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
