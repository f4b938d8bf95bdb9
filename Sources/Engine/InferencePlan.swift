import CDNNL
import Synchronization

/// What a forward pass runs: the network's nodes, except that a convolution
/// and the nodes around it whose outputs nobody needs to see become one oneDNN
/// primitive, one pass over memory:
///
///     [ZeroPadding2D →] Conv2D | DepthwiseConv2D [→ BatchNormalization | per-channel affine]
///         [→ activation] [→ Dropout …] [→ Add of one other tensor] [→ activation]
///
/// The padding becomes the convolution's own, the affine map is folded into
/// its weights and bias, the Add is a `sum` post-op on the other tensor's
/// buffer, the activations are eltwise post-ops.
///
/// The Keras layer graph stays the unit of addressing. A node that must be
/// materialised (the stop node, the nodes asked to be kept, what a backward
/// pass will read) never disappears inside a fused step: a chain ends at it,
/// so its output is computed and kept. It is computed with the folded weights,
/// so it equals the unfused output up to float rounding (the sums are the same,
/// the products are rounded once instead of twice).
struct InferencePlan: Sendable {
    struct Step: Sendable {
        /// The node whose output this step produces.
        let node: Int
        /// The nodes it reads.
        let inputs: [Int]
        let operation: Operation
    }

    enum Operation: Sendable {
        case layer(any Layer)
        /// A convolution with folded padding, weights and bias, and post-ops;
        /// `layer` is the Keras convolution (its input checks and error messages).
        /// With `addsResidual`, the step's last input is added to the result.
        case fused(layer: any Layer, convolution: DNNLConvolution, addsResidual: Bool)
        /// A per-channel affine map (BatchNormalization's) and the ReLU after it, in one pass.
        case affineReLU(ChannelAffine, ReLUSpec)
    }

    let steps: [Step]
    /// Which steps may run side by side (see `BranchSchedule`).
    let schedule: BranchSchedule
}

/// A network's plans, keyed by what they must materialise, and the folded
/// convolutions they share (folded once per fused chain, whatever plan uses
/// it: the convolution keeps its own oneDNN primitives and reordered weights).
final class InferencePlans: Sendable {
    struct Key: Hashable, Sendable {
        let last: Int
        let materialised: [Int]
    }

    private struct Plans {
        var byKey: [Key: InferencePlan] = [:]
        var order: [Key] = []  // least recently used first
    }

    /// A server sees few distinct requests (stop at a layer, keep a layer, a
    /// CAM region); the bound keeps arbitrary `keep` sets from growing without limit.
    private static let capacity = 32
    private let plans = Mutex(Plans())
    private let convolutions = Mutex<[[Int]: DNNLConvolution]>([:])

    init() {}

    func plan(for key: Key, build: () -> InferencePlan) -> InferencePlan {
        plans.withLock { p in
            if let plan = p.byKey[key] {
                if let i = p.order.firstIndex(of: key) { p.order.remove(at: i) }
                p.order.append(key)
                return plan
            }
            let plan = build()
            p.byKey[key] = plan
            p.order.append(key)
            while p.order.count > Self.capacity { p.byKey[p.order.removeFirst()] = nil }
            return plan
        }
    }

    /// The folded convolution of a chain of node ids (convolution first).
    func convolution(for chain: [Int], build: () -> DNNLConvolution) -> DNNLConvolution {
        convolutions.withLock { c in
            if let conv = c[chain] { return conv }
            let conv = build()
            c[chain] = conv
            return conv
        }
    }
}

extension Network {
    /// The plan that computes node `last` and materialises every node of `materialised`
    /// it depends on; cached.
    func inferencePlan(last: Int, materialised: Set<Int>) -> InferencePlan {
        let key = InferencePlans.Key(last: last, materialised: materialised.sorted())
        return plans.plan(for: key) { makeInferencePlan(last: last, materialised: materialised) }
    }

    /// One step per node that `last` depends on, nothing fused: what a trace
    /// that keeps everything runs.
    func unfusedPlan(last: Int) -> InferencePlan {
        let needed = ancestors(of: last)
        let steps = needed.sorted().dropFirst().map {
            InferencePlan.Step(node: $0, inputs: nodes[$0].inputs, operation: .layer(nodes[$0].layer!))
        }
        return InferencePlan(steps: steps, schedule: BranchSchedule(steps: steps, cost: scheduleCost(of: steps)))
    }

    private func makeInferencePlan(last: Int, materialised: Set<Int>) -> InferencePlan {
        let needed = ancestors(of: last).sorted()
        var readers = [[Int]](repeating: [], count: nodes.count)
        for id in needed { for i in nodes[id].inputs { readers[i].append(id) } }
        /// The node that alone reads `id`, when `id`'s output may disappear inside a fused step.
        func soleReader(_ id: Int) -> Int? {
            guard !materialised.contains(id), readers[id].count == 1 else { return nil }
            return readers[id][0]
        }
        /// `soleReader`, when it reads nothing else.
        func onlyReader(_ id: Int) -> Int? {
            guard let r = soleReader(id), nodes[r].inputs == [id] else { return nil }
            return r
        }

        var steps: [InferencePlan.Step] = []
        var absorbed = Set<Int>()
        for id in needed.dropFirst() where !absorbed.contains(id) {
            let node = nodes[id]
            // A chain starts at a convolution, or at a ZeroPadding2D that only it reads.
            var head = id
            var pad = [0, 0, 0, 0]
            if let p = node.layer as? ZeroPadding2D, let next = onlyReader(id), FoldableConvolution(nodes[next].layer!) != nil {
                head = next
                pad = [p.top, p.bottom, p.left, p.right]
            }
            guard let conv = FoldableConvolution(nodes[head].layer!) else {
                if let affine = (node.layer as? BatchNormalization)?.affine ?? (node.layer as? ChannelAffine),
                    let next = onlyReader(id), let relu = (nodes[next].layer as? Activation)?.relu
                {
                    steps.append(InferencePlan.Step(node: next, inputs: node.inputs, operation: .affineReLU(affine, relu)))
                    absorbed.insert(next)
                } else {
                    steps.append(InferencePlan.Step(node: id, inputs: node.inputs, operation: .layer(node.layer!)))
                }
                continue
            }
            var chain = head == id ? [id] : [id, head]
            var affine: (scale: [Float], offset: [Float])?
            var postOps: [PostOp] = []
            var residual: Int?
            if let next = onlyReader(head), let a = foldableAffine(nodes[next].layer, channels: conv.outputChannels) {
                chain.append(next)
                affine = a
            }
            func activation() {
                if let next = onlyReader(chain.last!), let op = (nodes[next].layer as? Activation)?.postOp {
                    chain.append(next)
                    postOps.append(.eltwise(op))
                }
            }
            activation()
            // Dropout and the like pass through at inference (EfficientNet: project_bn → drop → add).
            while let next = onlyReader(chain.last!), nodes[next].layer is Identity { chain.append(next) }
            // x + c·y, where y is this chain's result and the other addend x is computed
            // elsewhere. A weight c ≠ 1 (InceptionResNetV2's scaled residuals: x + 0.17·y)
            // folds into the kernel and bias like the affine map, when no activation
            // stands between the convolution and the sum.
            let end = chain.last!
            if let add = soleReader(end), let layer = nodes[add].layer as? Add, nodes[add].inputs.count == 2,
                let other = nodes[add].inputs.first(where: { $0 != end }), !absorbed.contains(add),
                let weight = layer.weight(ofOnly: end, besideUnitWeighted: other, inputs: nodes[add].inputs),
                weight == 1 || postOps.isEmpty
            {
                if weight != 1 {
                    let a = affine ?? ([Float](repeating: 1, count: conv.outputChannels), [Float](repeating: 0, count: conv.outputChannels))
                    affine = (a.scale.map { $0 * weight }, a.offset.map { $0 * weight })
                }
                chain.append(add)
                postOps.append(.sum)
                residual = other
                activation()
            }
            if chain.count == 1 {
                steps.append(InferencePlan.Step(node: id, inputs: node.inputs, operation: .layer(node.layer!)))
                continue
            }
            let folded = plans.convolution(for: chain) { conv.folded(affine: affine, postOps: postOps, inputPadding: pad) }
            steps.append(
                InferencePlan.Step(
                    node: chain.last!, inputs: node.inputs + (residual.map { [$0] } ?? []),
                    operation: .fused(layer: nodes[head].layer!, convolution: folded, addsResidual: residual != nil)))
            absorbed.formUnion(chain)
        }
        // A fused step runs where its last node was: the residual it adds may
        // be computed after the convolution's own position.
        let ordered = steps.sorted { $0.node < $1.node }
        return InferencePlan(steps: ordered, schedule: BranchSchedule(steps: ordered, cost: scheduleCost(of: ordered)))
    }
}

extension InferencePlan.Step {
    /// Runs the step on its inputs (taken: a residual is written over in place
    /// when nothing else holds it).
    func run(_ inputs: inout [Tensor]) throws -> Tensor {
        switch operation {
        case .layer(let layer as any InPlaceLayer):
            return try layer.forward(consuming: &inputs)
        case .layer(let layer):
            return try layer.forward(inputs)
        case .fused(let layer, let convolution, addsResidual: false):
            return try layer.convolve(inputs, conv: convolution)
        case .affineReLU(let affine, let relu):
            return try affine.forward(inputs, then: relu)
        case .fused(let layer, let convolution, addsResidual: true):
            var residual = inputs.removeLast()
            try layer.convolve(inputs, conv: convolution, addingTo: &residual)
            return residual
        }
    }
}

/// A valid Conv2D or DepthwiseConv2D, as the parts a folded copy is made from.
private struct FoldableConvolution {
    let kernel: Tensor
    let bias: Tensor?
    let strides: [Int]
    let padding: Padding
    let dilation: [Int]
    let depthwise: Bool

    init?(_ layer: any Layer) {
        if let c = layer as? Conv2D, c.convolution.invalid == nil {
            (kernel, bias, strides, padding, dilation, depthwise) = (c.kernel, c.bias, c.strides, c.padding, c.dilation, false)
        } else if let c = layer as? DepthwiseConv2D, c.convolution.invalid == nil {
            (kernel, bias, strides, padding, dilation, depthwise) = (c.kernel, c.bias, c.strides, c.padding, c.dilation, true)
        } else {
            return nil
        }
    }

    /// Both kernels keep the output channel on their last axes (Conv2D
    /// `[kh, kw, cin, cout]`; depthwise `[kh, kw, cin, m]`, output channel c·m + j),
    /// so element i of the flat kernel feeds output channel i mod this.
    var outputChannels: Int { depthwise ? kernel.shape[2] * kernel.shape[3] : kernel.shape[3] }

    /// conv(x)·s + t = conv'(x) with kernel K·s (per output channel) and bias b·s + t.
    func folded(affine: (scale: [Float], offset: [Float])?, postOps: [PostOp], inputPadding: [Int]) -> DNNLConvolution {
        var k = kernel
        var b = bias
        if let (s, t) = affine {
            let c = outputChannels
            k.scalars.withUnsafeMutableBufferPointer { w in
                for i in 0..<w.count { w[i] *= s[i % c] }
            }
            let old = bias?.scalars ?? [Float](repeating: 0, count: c)
            b = Tensor(shape: [c], scalars: (0..<c).map { old[$0] * s[$0] + t[$0] })
        }
        return DNNLConvolution(
            kernel: k, bias: b, strides: strides, dilation: dilation, padding: padding, depthwise: depthwise,
            postOps: postOps, inputPadding: inputPadding)
    }
}

extension Add {
    /// The weight of input `end` in this two-input sum, when the other input,
    /// `other`, has weight 1 (a sum post-op adds it as it is); nil otherwise.
    fileprivate func weight(ofOnly end: Int, besideUnitWeighted other: Int, inputs: [Int]) -> Float? {
        guard let c = coefficients else { return 1 }
        guard let e = inputs.firstIndex(of: end), let o = inputs.firstIndex(of: other), c[o] == 1 else { return nil }
        return c[e]
    }
}

/// A per-channel `x·s + t` that can be folded into a convolution with
/// `channels` outputs: BatchNormalization (already s and t) or a ChannelAffine,
/// `(x − m)·s + o = x·s + (o − m·s)`.
private func foldableAffine(_ layer: (any Layer)?, channels: Int) -> (scale: [Float], offset: [Float])? {
    let affine: ChannelAffine
    if let bn = layer as? BatchNormalization, let a = bn.affine {
        affine = a
    } else if let a = layer as? ChannelAffine {
        affine = a
    } else {
        return nil
    }
    let vectors = [affine.center, affine.scale, affine.offset]
    guard vectors.allSatisfy({ $0.count == 1 || $0.count == channels }) else { return nil }
    let (m, s, o) = (vectors[0], vectors[1], vectors[2])
    func at(_ v: [Float], _ c: Int) -> Float { v.count == 1 ? v[0] : v[c] }
    let scale = (0..<channels).map { at(s, $0) }
    let offset = (0..<channels).map { at(o, $0) - at(m, $0) * at(s, $0) }
    return (scale, offset)
}

extension Activation {
    /// The oneDNN eltwise post-op that computes this activation as `forward`
    /// does, or nil. ReLU, leaky ReLU and clipped ReLU are the same
    /// comparisons and selects; sigmoid, tanh, swish and hard-swish already
    /// run on oneDNN's eltwise kernels here. Keras' thresholded ReLU and the smooth
    /// activations written out in Swift (elu, gelu, hard sigmoid, …) stay nodes
    /// of their own.
    var postOp: EltwisePostOp? {
        switch function {
        case .relu(nil, 0, 0):
            return EltwisePostOp(algorithm: dnnl_eltwise_relu, alpha: 0, beta: 0)
        case .relu(nil, let slope, 0):
            return EltwisePostOp(algorithm: dnnl_eltwise_relu, alpha: slope, beta: 0)
        case .relu(let maxValue?, 0, 0) where maxValue >= 0:
            return EltwisePostOp(algorithm: dnnl_eltwise_clip, alpha: 0, beta: maxValue)
        case .sigmoid:
            return EltwisePostOp(algorithm: dnnl_eltwise_logistic, alpha: 0, beta: 0)
        case .tanh:
            return EltwisePostOp(algorithm: dnnl_eltwise_tanh, alpha: 0, beta: 0)
        case .swish:
            return EltwisePostOp(algorithm: dnnl_eltwise_swish, alpha: 1, beta: 0)
        case .hardSwish:
            return EltwisePostOp(algorithm: dnnl_eltwise_hardswish, alpha: 0, beta: 0)
        default:
            return nil
        }
    }
}
