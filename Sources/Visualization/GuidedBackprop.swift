import Engine
import Imaging

extension Network {
    /// Guided Backpropagation (Springenberg et al. 2015): the input gradient with
    /// every ReLU also passing only positive incoming gradients
    /// (`backward(..., guidedReLU: true)`); map = max over channels of |gradient|, / max.
    public func guidedBackprop(_ input: Tensor, _ request: CAMRequest) throws -> CAMResult {
        guard input.batch == 1 else { throw VisualizationError.invalid("guided backprop takes one image, got a batch of \(input.batch)") }
        let k = try resolvedClass(input, request)
        let (g, scores) = try inputGradients(input, scoreNode: request.scoreNode, classIndex: k, guided: true)
        return inputResult(.guidedBackprop, input, g, classIndex: k, score: scores[0])
    }

    /// Guided Grad-CAM (Selvaraju et al. 2017): the guided-backprop gradient times the
    /// Grad-CAM map (already in [0, 1]) upsampled bilinearly (half-pixel centres) to
    /// the input size, broadcast over channels; map = max over channels of |product|, / max.
    public func guidedGradCAM(_ input: Tensor, _ request: CAMRequest) throws -> CAMResult {
        guard input.batch == 1, input.rank == 4 else {
            throw VisualizationError.invalid("guided Grad-CAM takes one image [1, H, W, C], got \(input.shape)")
        }
        let cam = try gradCAMComputation(input, request, method: .gradcam)
        let guided = try guidedBackprop(
            input,
            CAMRequest(
                layerNode: request.layerNode, scoreNode: request.scoreNode,
                classIndex: cam.classIndex))
        let (h, w, c) = (input.shape[1], input.shape[2], input.shape[3])
        let up = try upsampleBilinear(cam.heatmap, width: cam.width, height: cam.height, toWidth: w, toHeight: h)
        var product = guided.attribution!
        for p in 0..<(h * w) { for q in 0..<c { product.scalars[p * c + q] *= up[p] } }
        return inputResult(.guidedGradcam, input, product, classIndex: cam.classIndex, score: cam.score)
    }
}
