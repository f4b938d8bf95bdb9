import Engine
import KerasFormat

/// The layer Grad-CAM uses when none is named.
///
/// Rule: take the last convolution — Conv2D, DepthwiseConv2D, SeparableConv2D,
/// or a Dense applied per position of a feature map (ConvNeXt's pointwise
/// convolutions) — whose output is still spatial (H and W > 1, or variable).
/// Then carry it forward, step by step, to its immediate post-dominator (the
/// nearest layer that every path from it to the model's output goes through)
/// while that layer and every layer on the way only normalise, activate,
/// rescale or merge the map at the same height and width: BatchNormalization,
/// LayerNormalization, activations (not softmax), Rescaling / Normalization /
/// LayerScale and arithmetic with constants, Dropout-like identities, Add,
/// Multiply, Concatenate. It stops before anything that pools, strides,
/// flattens or is another kind.
///
/// So the map is the convolution's output after its own normalisation and
/// activation — VGG16 → `block5_conv3` (activation fused; next comes
/// `block5_pool`), Xception → `block14_sepconv2_act`, EfficientNet →
/// `top_activation`, MobileNetV2 → `out_relu` — and, where the last convolution
/// ends a residual or multi-branch block, the block's output, which is what
/// the rest of the network sees: ResNet50 → `conv5_block3_out` (not the
/// un-activated `conv5_block3_3_bn` before the residual Add), DenseNet121 →
/// `relu`, InceptionV3 → `mixed10`, MobileNetV3 (Keras 2, hard-swish written
/// as arithmetic) → the hard-swish's Multiply.
///
/// A per-pixel output (a segmentation's [h, w, classes]) is itself a convolution's: that
/// head's map is the class scores themselves, so the rule takes the last convolution before it.
public func defaultCAMLayer(of model: KerasModel) -> LayerSummary? {
    let convolutions: Set<String> = ["Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Convolution2D"]
    let nodes = model.network.nodes
    func spatial(_ shape: [Int]) -> Bool {
        shape.count == 3 && (shape[0] == -1 || shape[0] > 1) && (shape[1] == -1 || shape[1] > 1)
    }
    func isConvolution(_ l: LayerSummary) -> Bool {
        guard spatial(l.outputShape) else { return false }
        if convolutions.contains(l.className) { return true }
        // A Dense on a feature map is a 1×1 convolution.
        return l.className == "Dense" && nodes[l.nodeId].inputs.allSatisfy { spatial(nodes[$0].outputShape) }
    }
    let head: Set<Int> = spatial(model.network.outputShape) ? Set([model.network.outputNode] + [model.logitsNode].compactMap { $0 }) : []
    guard let conv = model.layers.filter({ isConvolution($0) && !head.contains($0.nodeId) }).max(by: { $0.nodeId < $1.nodeId }) else {
        return model.layers.last(where: { spatial($0.outputShape) })
    }
    let byNode = Dictionary(model.layers.map { ($0.nodeId, $0) }, uniquingKeysWith: { a, _ in a })
    let follow = PostDominators(model.network)
    var best = conv
    var current = conv.nodeId
    while let next = follow.immediate[current], next != current {
        guard follow.nodes(between: current, and: next).allSatisfy({ isFollowUp(nodes[$0], sameSizeAs: nodes[conv.nodeId]) }) else {
            break
        }
        current = next
        if let layer = byNode[next] { best = layer }
    }
    return best
}

/// Whether a node only normalises, activates, rescales or merges a feature map
/// at the same height and width as `reference`.
private func isFollowUp(_ node: Network.Node, sameSizeAs reference: Network.Node) -> Bool {
    let s = node.outputShape
    let r = reference.outputShape
    guard s.count == 3, r.count == 3, s[0] == r[0], s[1] == r[1] else { return false }
    switch node.layer {
    case let a as Activation: return a.function != .softmax
    case is BatchNormalization, is LayerNormalization, is ChannelAffine, is Identity, is PReLU,
        is Add, is Multiply, is Concatenate:
        return true
    default:
        return false
    }
}

/// Immediate post-dominators of a network's nodes with respect to its output:
/// node ids are topological, so each node's post-dominators have larger ids,
/// and the meet of two chains is found by walking the smaller id up
/// (Cooper, Harvey and Kennedy's intersection on the reversed graph).
struct PostDominators {
    /// Node → its immediate post-dominator (the output maps to itself); nodes
    /// that do not reach the output are absent.
    let immediate: [Int: Int]
    private let consumers: [[Int]]

    init(_ network: Network) {
        let nodes = network.nodes
        var consumers = [[Int]](repeating: [], count: nodes.count)
        for n in nodes { for i in Set(n.inputs) { consumers[i].append(n.id) } }
        var ipdom: [Int: Int] = [network.outputNode: network.outputNode]
        for v in stride(from: network.outputNode - 1, through: 0, by: -1) {
            var meet: Int?
            for c in consumers[v] where ipdom[c] != nil {
                guard var a = meet else {
                    meet = c
                    continue
                }
                var b = c
                while a != b {
                    if a < b { a = ipdom[a]! } else { b = ipdom[b]! }
                }
                meet = a
            }
            if let meet { ipdom[v] = meet }
        }
        immediate = ipdom
        self.consumers = consumers
    }

    /// The nodes on the paths from `start` to its post-dominator `end`, `end`
    /// included and `start` not.
    func nodes(between start: Int, and end: Int) -> [Int] {
        var seen: Set<Int> = [end]
        var stack = consumers[start].filter { immediate[$0] != nil }
        var out = [end]
        while let n = stack.popLast() {
            guard seen.insert(n).inserted else { continue }
            out.append(n)
            stack += consumers[n].filter { immediate[$0] != nil }
        }
        return out
    }
}

/// A convolution's output after its own normalisation and activation: while the
/// layer's output feeds exactly one layer and that layer is an element-wise follow-up
/// (BatchNormalization, Activation, ReLU, LeakyReLU, ELU, PReLU) with a spatial output,
/// move to it. EfficientNet-Lite0's `stem_conv` → `stem_activation`; a VGG16 convolution
/// (activation fused) is its own. What a filter "looks for" is best seen there: the
/// channel mean of a linear convolution's raw output rises with a flat colour.
public func activatedOutput(of layer: LayerSummary, in model: KerasModel) -> LayerSummary {
    let followUps: Set<String> = ["BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU"]
    var current = layer
    let byNode = Dictionary(model.layers.map { ($0.nodeId, $0) }, uniquingKeysWith: { a, _ in a })
    let nodes = model.network.nodes
    while true {
        let consumers = nodes.filter { $0.inputs.contains(current.nodeId) }
        guard consumers.count == 1 else { break }
        // The consumer may be an internal node (e.g. a fused activation) of a Keras layer:
        // find the Keras layer whose output node is reached through such internal nodes.
        var node = consumers[0]
        while byNode[node.id] == nil {
            let next = nodes.filter { $0.inputs.contains(node.id) }
            guard next.count == 1 else { return current }
            node = next[0]
        }
        guard let next = byNode[node.id], followUps.contains(next.className), next.isSpatial else { break }
        current = next
    }
    return current
}
