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
    let followUps: Set<String> = ["BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU"]
    func spatial(_ l: LayerSummary) -> Bool {
        l.isSpatial && (l.outputShape[0] == -1 || l.outputShape[0] > 1) && (l.outputShape[1] == -1 || l.outputShape[1] > 1)
    }
    guard var current = model.layers.last(where: { convolutions.contains($0.className) && spatial($0) }) else {
        return model.layers.last(where: spatial)
    }
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
        guard let layer = byNode[node.id], followUps.contains(layer.className), spatial(layer) else { break }
        current = layer
    }
    return current
}
