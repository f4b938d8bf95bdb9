import Testing

@testable import Engine

// Test-side references for the engine layers: naive direct loops written from
// the Keras/TensorFlow definitions, independent of the engine's code (they do
// not call `Padding.outputSizeAndPadding` or oneDNN), plus the generic checks
// every layer goes through (reference comparison, adjoint test, batch split).

// MARK: - Deterministic random numbers

extension SplitMix64 {
    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Float = -1, _ hi: Float = 1) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }
    mutating func tensor(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in uniform(lo, hi) })
    }
}

// MARK: - TensorFlow padding, re-derived

/// TF: 'valid' → floor((in − eff)/s) + 1; 'same' → ceil(in/s), total padding
/// max(0, (out−1)·s + eff − in), the smaller half before.
func tfPadding(_ padding: Padding, input: Int, kernel: Int, stride: Int, dilation: Int = 1) -> (out: Int, before: Int) {
    let eff = (kernel - 1) * dilation + 1
    if padding == .valid { return (input < eff ? 0 : (input - eff) / stride + 1, 0) }
    let out = (input + stride - 1) / stride
    let total = max(0, (out - 1) * stride + eff - input)
    return (out, total / 2)
}

// MARK: - Naive references

/// Direct convolution, NHWC input, HWIO kernel.
func referenceConv2D(
    _ x: Tensor, kernel: Tensor, bias: Tensor?, strides: [Int], padding: Padding,
    dilation: [Int]
) -> Tensor {
    let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (kh, kw, cout) = (kernel.shape[0], kernel.shape[1], kernel.shape[3])
    let py = tfPadding(padding, input: h, kernel: kh, stride: strides[0], dilation: dilation[0])
    let px = tfPadding(padding, input: w, kernel: kw, stride: strides[1], dilation: dilation[1])
    var out = Tensor(zeros: [n, py.out, px.out, cout])
    for b in 0..<n {
        for oy in 0..<py.out {
            for ox in 0..<px.out {
                for o in 0..<cout {
                    var s: Double = Double(bias?.scalars[o] ?? 0)
                    for ky in 0..<kh {
                        for kx in 0..<kw {
                            let iy = oy * strides[0] - py.before + ky * dilation[0]
                            let ix = ox * strides[1] - px.before + kx * dilation[1]
                            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                            for i in 0..<cin {
                                s +=
                                    Double(x.scalars[((b * h + iy) * w + ix) * cin + i])
                                    * Double(kernel.scalars[((ky * kw + kx) * cin + i) * cout + o])
                            }
                        }
                    }
                    out.scalars[((b * py.out + oy) * px.out + ox) * cout + o] = Float(s)
                }
            }
        }
    }
    return out
}

/// Direct depthwise convolution, kernel [kh, kw, cin, m], output channel c·m + j.
func referenceDepthwise(
    _ x: Tensor, kernel: Tensor, bias: Tensor?, strides: [Int], padding: Padding,
    dilation: [Int]
) -> Tensor {
    let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (kh, kw, m) = (kernel.shape[0], kernel.shape[1], kernel.shape[3])
    let py = tfPadding(padding, input: h, kernel: kh, stride: strides[0], dilation: dilation[0])
    let px = tfPadding(padding, input: w, kernel: kw, stride: strides[1], dilation: dilation[1])
    let cout = cin * m
    var out = Tensor(zeros: [n, py.out, px.out, cout])
    for b in 0..<n {
        for oy in 0..<py.out {
            for ox in 0..<px.out {
                for c in 0..<cin {
                    for j in 0..<m {
                        var s: Double = Double(bias?.scalars[c * m + j] ?? 0)
                        for ky in 0..<kh {
                            for kx in 0..<kw {
                                let iy = oy * strides[0] - py.before + ky * dilation[0]
                                let ix = ox * strides[1] - px.before + kx * dilation[1]
                                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                s +=
                                    Double(x.scalars[((b * h + iy) * w + ix) * cin + c])
                                    * Double(kernel.scalars[((ky * kw + kx) * cin + c) * m + j])
                            }
                        }
                        out.scalars[((b * py.out + oy) * px.out + ox) * cout + c * m + j] = Float(s)
                    }
                }
            }
        }
    }
    return out
}

/// Dense on the last axis: kernel [in, out].
func referenceDense(_ x: Tensor, kernel: Tensor, bias: Tensor?) -> Tensor {
    let (k, o) = (kernel.shape[0], kernel.shape[1])
    let rows = x.count / k
    var out = [Float](repeating: 0, count: rows * o)
    for r in 0..<rows {
        for j in 0..<o {
            var s = Double(bias?.scalars[j] ?? 0)
            for i in 0..<k { s += Double(x.scalars[r * k + i]) * Double(kernel.scalars[i * o + j]) }
            out[r * o + j] = Float(s)
        }
    }
    return Tensor(shape: Array(x.shape.dropLast()) + [o], scalars: out)
}

/// Max (padding never wins) or average (padded cells excluded from the count) pooling.
func referencePool(_ x: Tensor, max isMax: Bool, pool: [Int], strides: [Int], padding: Padding) -> Tensor {
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let py = tfPadding(padding, input: h, kernel: pool[0], stride: strides[0])
    let px = tfPadding(padding, input: w, kernel: pool[1], stride: strides[1])
    var out = Tensor(zeros: [n, py.out, px.out, c])
    for b in 0..<n {
        for oy in 0..<py.out {
            for ox in 0..<px.out {
                for k in 0..<c {
                    var best = -Float.infinity
                    var sum: Double = 0
                    var count = 0
                    for ky in 0..<pool[0] {
                        for kx in 0..<pool[1] {
                            let iy = oy * strides[0] - py.before + ky
                            let ix = ox * strides[1] - px.before + kx
                            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                            let v = x.scalars[((b * h + iy) * w + ix) * c + k]
                            best = max(best, v)
                            sum += Double(v)
                            count += 1
                        }
                    }
                    out.scalars[((b * py.out + oy) * px.out + ox) * c + k] = isMax ? best : Float(sum / Double(count))
                }
            }
        }
    }
    return out
}

// MARK: - Checks

func dot(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count)
    var s: Double = 0
    for i in 0..<a.count { s += Double(a.scalars[i]) * Double(b.scalars[i]) }
    return s
}

func norm(_ a: Tensor) -> Double { dot(a, a).squareRoot() }

func subtract(_ a: Tensor, _ b: Tensor) -> Tensor {
    Tensor(shape: a.shape, scalars: zip(a.scalars, b.scalars).map { $0 - $1 })
}

/// max|got − want| ≤ tol · max(max|want|, 1e-3): relative to the tensor's scale.
func expectClose(
    _ got: Tensor, _ want: Tensor, tol: Float = 1e-4, _ what: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(got.shape == want.shape, "\(what): shape \(got.shape) vs \(want.shape)", sourceLocation: sourceLocation)
    guard got.shape == want.shape else { return }
    let err = got.maxAbsDifference(want)
    let scale = max(want.maxAbs, 1e-3)
    #expect(err <= tol * scale, "\(what): max error \(err) vs scale \(scale)", sourceLocation: sourceLocation)
}

/// The dot-product test for a layer that is linear (or affine: the constant
/// part is removed by subtracting f(0)) in its inputs:
/// ⟨J·v, y⟩ must equal Σᵢ ⟨vᵢ, (Jᵀ·y)ᵢ⟩, up to 1e-4 of ‖J·v‖·‖y‖.
func expectAdjoint(
    _ layer: any Layer, inputShapes: [[Int]], seed: UInt64 = 7,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    var rng = SplitMix64(seed: seed)
    let v = inputShapes.map { rng.tensor($0) }
    let zeros = inputShapes.map { Tensor(zeros: $0) }
    let fv = try layer.forward(v)
    let jv = subtract(fv, try layer.forward(zeros))
    let y = rng.tensor(fv.shape)
    let grads = try layer.backward(v, output: fv, outputGradient: y)
    #expect(grads.count == v.count, sourceLocation: sourceLocation)
    for (g, x) in zip(grads, v) { #expect(g.shape == x.shape, sourceLocation: sourceLocation) }
    let lhs = dot(jv, y)
    let rhs = zip(v, grads).reduce(0.0) { $0 + dot($1.0, $1.1) }
    let scale = max(norm(jv) * norm(y), 1e-6)
    #expect(
        abs(lhs - rhs) <= 1e-4 * scale,
        "\(layer.name): <Jv,y> = \(lhs), <v,J^T y> = \(rhs)", sourceLocation: sourceLocation)
    // A vacuous test (all-zero Jacobian) would pass trivially; make sure it is not.
    #expect(norm(jv) > 0, "\(layer.name): J·v is zero", sourceLocation: sourceLocation)
}

/// A batch of 3 gives the same forward and backward results as 3 runs of one.
func expectBatchConsistent(
    _ layer: any Layer, sampleShapes: [[Int]], seed: UInt64 = 11,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    var rng = SplitMix64(seed: seed)
    let xs = sampleShapes.map { rng.tensor([3] + $0) }
    let out = try layer.forward(xs)
    let g = rng.tensor(out.shape)
    let grads = try layer.backward(xs, output: out, outputGradient: g)
    for i in 0..<3 {
        let xi = xs.map { $0.sample(i) }
        let oi = try layer.forward(xi)
        expectClose(oi, out.sample(i), tol: 1e-5, "\(layer.name) forward sample \(i)", sourceLocation: sourceLocation)
        let gi = try layer.backward(xi, output: oi, outputGradient: g.sample(i))
        for (k, gk) in gi.enumerated() {
            expectClose(
                gk, grads[k].sample(i), tol: 1e-5, "\(layer.name) backward sample \(i) input \(k)",
                sourceLocation: sourceLocation)
        }
    }
}

/// Central finite differences of L(x) = ⟨y, f(x)⟩ against the backward pass,
/// element by element; |fd − analytic| ≤ tol (absolute, gradients are O(1)).
func expectFiniteDifferences(
    _ layer: any Layer, input x: Tensor, eps: Float = 1e-2, tol: Double = 1e-3,
    seed: UInt64 = 5, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    var rng = SplitMix64(seed: seed)
    let out = try layer.forward([x])
    let y = rng.tensor(out.shape)
    let grad = try layer.backward([x], output: out, outputGradient: y)[0]
    var worst = 0.0
    for i in 0..<x.count {
        var xp = x
        var xm = x
        xp.scalars[i] += eps
        xm.scalars[i] -= eps
        let fd = (dot(y, try layer.forward([xp])) - dot(y, try layer.forward([xm]))) / Double(2 * eps)
        worst = max(worst, abs(fd - Double(grad.scalars[i])))
    }
    #expect(worst <= tol, "\(layer.name): worst finite-difference error \(worst)", sourceLocation: sourceLocation)
    #expect(grad.maxAbs > 0, "\(layer.name): gradient is zero", sourceLocation: sourceLocation)
}

/// The thrown error is a shape mismatch naming `layer`.
func expectShapeMismatch(
    _ layer: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected a shape mismatch from '\(layer)'", sourceLocation: sourceLocation)
    } catch let EngineError.shapeMismatch(name, _) {
        #expect(name == layer, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a shape mismatch, got \(error)", sourceLocation: sourceLocation)
    }
}

extension Network {
    /// A network of `layers` in order, each with the ids of the nodes it reads
    /// (0 is the input, of per-sample shape `input`); the last is the output.
    convenience init(input: [Int], _ layers: [(any Layer, [Int])]) throws {
        var nodes = [Network.Node(id: 0, layer: nil, inputs: [], outputShape: input)]
        for (layer, inputs) in layers {
            let shape = try layer.outputShape(for: inputs.map { nodes[$0].outputShape })
            nodes.append(Network.Node(id: nodes.count, layer: layer, inputs: inputs, outputShape: shape))
        }
        try self.init(nodes: nodes, outputNode: nodes.count - 1)
    }
}
