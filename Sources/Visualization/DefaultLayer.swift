import Engine
import KerasFormat

/// The layer Grad-CAM uses when none is named.
///
/// Rule: take the last convolution (Conv2D, DepthwiseConv2D, SeparableConv2D)
/// whose output is still spatial (H and W > 1, or variable); then, while its
/// output feeds exactly one layer and that layer is an element-wise follow-up —
/// BatchNormalization, Activation, ReLU, LeakyReLU — move to it. The result is
/// the convolution's output after its own normalisation and activation:
/// VGG16 → `block5_conv3` (activation fused), Xception → `block14_sepconv2_act`,
/// EfficientNet-Lite0 → `top_activation`.
public func defaultCAMLayer(of model: KerasModel) -> LayerSummary? {
    let convolutions: Set<String> = ["Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Convolution2D"]
    func spatial(_ l: LayerSummary) -> Bool {
        l.isSpatial && (l.outputShape[0] == -1 || l.outputShape[0] > 1) && (l.outputShape[1] == -1 || l.outputShape[1] > 1)
    }
    guard let current = model.layers.last(where: { convolutions.contains($0.className) && spatial($0) }) else {
        return model.layers.last(where: spatial)
    }
    return activatedOutput(of: current, in: model)
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
