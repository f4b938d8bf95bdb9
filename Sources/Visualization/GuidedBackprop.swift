import Engine
import Imaging

extension Network {
    /// Guided Backpropagation (Springenberg et al. 2015): the input gradient with
    /// every ReLU also passing only positive incoming gradients
    /// (`backward(..., guidedReLU: true)`); map = max over channels of |gradient|, / max.
    public func guidedBackprop(_ input: Tensor, _ request: CAMRequest) throws -> CAMResult {
        try guidedBackpropMaps(input, request)[0]
    }

    /// Guided backprop of each target of the request: one forward pass, one backward pass per target.
    func guidedBackpropMaps(_ input: Tensor, _ request: CAMRequest) throws -> [CAMResult] {
        guard input.batch == 1 else { throw VisualizationError.invalid("guided backprop takes one image, got a batch of \(input.batch)") }
        return try saliencyMaps(input, request, guided: true)
    }

    /// Guided Grad-CAM (Selvaraju et al. 2017): the guided-backprop gradient times the
    /// Grad-CAM map (already in [0, 1]) upsampled bilinearly (half-pixel centres) to
    /// the input size, broadcast over channels; map = max over channels of |product|, / max.
    public func guidedGradCAM(_ input: Tensor, _ request: CAMRequest) throws -> CAMResult {
        try guidedGradCAMMaps(input, request)[0]
    }

    /// Guided Grad-CAM of each target of the request, the guided gradients of the targets as
    /// resolved by the Grad-CAM pass.
    func guidedGradCAMMaps(_ input: Tensor, _ request: CAMRequest) throws -> [CAMResult] {
        guard input.batch == 1, input.rank == 4 else {
            throw VisualizationError.invalid("guided Grad-CAM takes one image [1, H, W, C], got \(input.shape)")
        }
        let cams = try gradCAMMaps(input, request, method: .gradcam)
        let guided = try guidedBackpropMaps(
            input,
            CAMRequest(layerNode: request.layerNode, scoreNode: request.scoreNode, targets: cams.map { CAMTarget(.resolved($0.target)) }))
        let (h, w, c) = (input.shape[1], input.shape[2], input.shape[3])
        return try zip(cams, guided).map { cam, guided in
            let up = try upsampleBilinear(cam.map.heatmap, width: cam.map.width, height: cam.map.height, toWidth: w, toHeight: h)
            var product = guided.attribution!
            for p in 0..<(h * w) { for q in 0..<c { product.scalars[p * c + q] *= up[p] } }
            return inputResult(.guidedGradcam, input, product, target: cam.target, score: cam.map.score)
        }
    }
}
