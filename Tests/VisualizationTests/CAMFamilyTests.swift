import Engine
import Foundation
import Imaging
import KerasFormat
import Testing

@testable import Visualization

/// The class-activation family beyond Grad-CAM: Score-CAM against the committed
/// fixtures of tools/fixtures/make_visualization_fixtures.py, the others against
/// tools/fixtures/make_cam_fixtures.py (TF GradientTape / NumPy on the same model and inputs,
/// Tests/Fixtures/visualization/cam_extra).
private let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/visualization")
private let extra = root.appendingPathComponent("cam_extra")

private func npy(_ url: URL) throws -> Tensor { try Tensor.readNPY(contentsOf: url) }

private struct ScoreCAMManifest: Decodable {
    struct GradCAM: Decodable {
        struct Image: Decodable {
            struct Case: Decodable {
                let name: String
                let class_index: Int
                let score: String
                let scorecam: String?
                let scorecam_all_zero: Bool?
            }
            let name: String
            let input: String
            let top1: Int
            let cases: [Case]
        }
        let model: String
        let layer: String
        let images: [Image]
    }
    let gradcam: GradCAM
}

private struct ExtraManifest: Decodable {
    struct Image: Decodable {
        struct Case: Decodable {
            let name: String
            let class_index: Int
            let logit: Float
            let layercam: String
            let saliency_gradient: String
            let saliency: String
            let ig: String
            let ig_map: String
            let ig_attribution_sum: Float
            let ig_score_difference: Float
            let guided_gradient: String
            let guided: String
            let guided_gradcam: String
        }
        let name: String
        let input: String
        let top1: Int
        let eigencam: String
        let cases: [Case]
    }
    let ig_steps: Int
    let images: [Image]
}

private let scoreManifest: ScoreCAMManifest = {
    let data = try! Data(contentsOf: root.appendingPathComponent("manifest.json"))
    return try! JSONDecoder().decode(ScoreCAMManifest.self, from: data)
}()

private let extraManifest: ExtraManifest = {
    let data = try! Data(contentsOf: extra.appendingPathComponent("manifest.json"))
    return try! JSONDecoder().decode(ExtraManifest.self, from: data)
}()

private let model: KerasModel = try! KerasModel.load(contentsOf: root.appendingPathComponent("cam_classifier.k3.h5"))

private func request(_ classIndex: Int? = nil, probability: Bool = false) throws -> CAMRequest {
    CAMRequest(
        layerNode: try model.network.node(named: "last_conv"),
        scoreNode: probability ? model.network.outputNode : model.logitsNode!, classIndex: classIndex)
}

private func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

// MARK: - Score-CAM

@Test(arguments: [1, 5, 16])
func scoreCAMMatchesFixtures(batchSize: Int) throws {
    var checked = 0
    for image in scoreManifest.gradcam.images {
        let x = try npy(root.appendingPathComponent(image.input))
        for c in image.cases {
            guard let file = c.scorecam else { continue }
            let result = try model.network.classActivationMap(
                x, try request(c.class_index), method: .scorecam,
                options: CAMOptions(batchSize: batchSize))
            let reference = try npy(root.appendingPathComponent(file))
            #expect(result.resolution == .layer)
            #expect(result.map.height == 8 && result.map.width == 8)
            let d = maxDiff(result.map.heatmap, reference.scalars)
            // Issue tolerance: ≤ 1e-3 after normalisation.
            #expect(d <= 1e-3, "\(c.name) batch \(batchSize): max |Δ| = \(d)")
            #expect(result.map.heatmap.max()! == 1, "\(c.name): normalised to a maximum of 1")
            checked += 1
        }
    }
    #expect(checked == 6)
}

@Test func scoreCAMOnTheSoftmaxOutputEqualsTheLogitsRoute() throws {
    // Score-CAM weighs by the probability either way: on the logits node it applies
    // the softmax itself, on the softmax node it reads it.
    let x = try npy(root.appendingPathComponent(scoreManifest.gradcam.images[0].input))
    let viaLogits = try model.network.scoreCAM(x, try request(4))
    let viaProbs = try model.network.scoreCAM(x, try request(4, probability: true))
    #expect(maxDiff(viaLogits.heatmap, viaProbs.heatmap) <= 1e-5)
    #expect(viaProbs.score < 1 && viaProbs.score > 0)
}

// MARK: - Layer-CAM, Eigen-CAM

@Test func layerCAMAndEigenCAMMatchNumPy() throws {
    var checked = 0
    for image in extraManifest.images {
        let x = try npy(root.appendingPathComponent(image.input))
        let eigen = try model.network.classActivationMap(x, try request(), method: .eigencam)
        let eigenRef = try npy(extra.appendingPathComponent(image.eigencam))
        #expect(eigen.resolution == .layer && eigen.map.heatmap.count == 64)
        let de = maxDiff(eigen.map.heatmap, eigenRef.scalars)
        #expect(de <= 1e-3, "\(image.name) Eigen-CAM: max |Δ| = \(de)")
        #expect(eigen.map.classIndex == image.top1)
        for c in image.cases {
            let layer = try model.network.classActivationMap(x, try request(c.class_index), method: .layercam)
            let d = maxDiff(layer.map.heatmap, try npy(extra.appendingPathComponent(c.layercam)).scalars)
            #expect(d <= 1e-3, "\(c.name) Layer-CAM: max |Δ| = \(d)")
            #expect(abs(layer.map.score - c.logit) <= 1e-4)
            checked += 1
        }
    }
    #expect(checked == 4)
}

@Test func eigenVectorOfAKnownMatrix() {
    // [[2, 1], [1, 2]]: eigenvalues 3 (1, 1)/√2 and 1 (1, −1)/√2.
    let v = topEigenvector([2, 1, 1, 2], 2)
    #expect(abs(abs(v[0]) - 0.5.squareRoot()) < 1e-12 && abs(v[0] - v[1]) < 1e-12)
    // Nearly equal top eigenvalues (1.001 vs 1) still resolve.
    let u = topEigenvector([1, 0, 0, 0, 1.001, 0, 0, 0, 0.5], 3)
    #expect(abs(abs(u[1]) - 1) < 1e-9)
    #expect(topEigenvector([0, 0, 0, 0], 2) == [0, 0])
}

// MARK: - Gradient saliency

@Test func saliencyIntegratedGradientsAndGuidedBackpropMatchTensorFlow() throws {
    var checked = 0
    for image in extraManifest.images {
        let x = try npy(root.appendingPathComponent(image.input))
        for c in image.cases {
            let req = try request(c.class_index)
            func check(_ method: CAMMethod, raw: String?, map: String, tolerance: Float = 1e-3) throws {
                let r = try model.network.classActivationMap(
                    x, req, method: method, options: CAMOptions(batchSize: 7, gradientBatchSize: 7))
                #expect(r.resolution == .input && r.map.height == 32 && r.map.width == 32, "\(method)")
                #expect(r.map.classIndex == c.class_index)
                let d = maxDiff(r.map.heatmap, try npy(extra.appendingPathComponent(map)).scalars)
                #expect(d <= tolerance, "\(c.name) \(method.rawValue) map: max |Δ| = \(d)")
                if let raw {
                    let reference = try npy(extra.appendingPathComponent(raw))
                    let attribution = try #require(r.attribution)
                    let dr = attribution.maxAbsDifference(reference)
                    // Raw tensors: relative to the tensor's own scale.
                    #expect(dr <= 1e-4 * reference.maxAbs, "\(c.name) \(method.rawValue) raw: max |Δ| = \(dr) of \(reference.maxAbs)")
                }
            }
            try check(.saliency, raw: c.saliency_gradient, map: c.saliency)
            try check(.integratedGradients, raw: c.ig, map: c.ig_map)
            try check(.guidedBackprop, raw: c.guided_gradient, map: c.guided)
            try check(.guidedGradcam, raw: nil, map: c.guided_gradcam)
            checked += 1
        }
    }
    #expect(checked == 4)
}

@Test func integratedGradientsAreComplete() throws {
    for image in extraManifest.images {
        let x = try npy(root.appendingPathComponent(image.input))
        for c in image.cases {
            let r = try model.network.integratedGradients(x, try request(c.class_index))
            let comp = try #require(r.completeness)
            // F(x) − F(0) from the two end points equals TF's.
            #expect(abs(comp.scoreDifference - c.ig_score_difference) <= 1e-4)
            #expect(abs(comp.attributionSum - c.ig_attribution_sum) <= 1e-4 * max(1, abs(c.ig_attribution_sum)))
            // Completeness with m = 32 on this ReLU net: within 2 % of the score difference.
            #expect(comp.error <= 0.02 * abs(comp.scoreDifference), "\(c.name): \(comp)")
            #expect(comp.error > 0 || comp.attributionSum == comp.scoreDifference)
        }
    }
    // More steps, smaller error (the Riemann sum converges).
    let x = try npy(root.appendingPathComponent(extraManifest.images[0].input))
    let coarse = try model.network.integratedGradients(x, try request(), options: CAMOptions(integratedGradientsSteps: 4)).completeness!
    let fine = try model.network.integratedGradients(
        x, try request(), options: CAMOptions(gradientBatchSize: 64, integratedGradientsSteps: 256)
    ).completeness!
    #expect(fine.error < coarse.error, "m=4: \(coarse.error), m=256: \(fine.error)")
    #expect(fine.error <= 0.005 * abs(fine.scoreDifference))
    // The batch size does not change the result.
    let one = try model.network.integratedGradients(x, try request(), options: CAMOptions(gradientBatchSize: 1))
    let many = try model.network.integratedGradients(x, try request(), options: CAMOptions(gradientBatchSize: 33))
    #expect(one.attribution!.maxAbsDifference(many.attribution!) <= 1e-6 * many.attribution!.maxAbs)
}

@Test func integratedGradientsFromAGivenBaseline() throws {
    let x = try npy(root.appendingPathComponent(extraManifest.images[1].input))
    let grey = Tensor(repeating: 0.5, shape: x.shape)
    let r = try model.network.integratedGradients(x, try request(), options: CAMOptions(baseline: grey))
    let comp = try #require(r.completeness)
    let fx = try model.network.forward(x, stopAfter: model.logitsNode!)[model.logitsNode!]!.scalars[r.map.classIndex]
    let fb = try model.network.forward(grey, stopAfter: model.logitsNode!)[model.logitsNode!]!.scalars[r.map.classIndex]
    #expect(abs(comp.scoreDifference - (fx - fb)) <= 1e-5)
    #expect(comp.error <= 0.05 * abs(comp.scoreDifference) + 1e-3)
    // A pixel equal to the baseline gets no attribution.
    var y = x
    for i in 0..<3 { y.scalars[i] = 0.5 }
    let ry = try model.network.integratedGradients(y, try request(), options: CAMOptions(baseline: grey))
    #expect(ry.attribution!.scalars[0..<3].allSatisfy { $0 == 0 })
    #expect(throws: VisualizationError.self) {
        _ = try model.network.integratedGradients(x, try request(), options: CAMOptions(baseline: Tensor(zeros: [1, 2, 2, 3])))
    }
}

// MARK: - SmoothGrad

@Test func smoothGradWithoutNoiseIsVanillaSaliency() throws {
    let x = try npy(root.appendingPathComponent(extraManifest.images[0].input))
    let vanilla = try model.network.saliency(x, try request())
    let smooth = try model.network.smoothGrad(x, try request(), options: CAMOptions(smoothGradSamples: 1, smoothGradNoiseLevel: 0))
    // Same computation; a tolerance only in case the engine's threading reorders sums.
    #expect(smooth.attribution!.maxAbsDifference(vanilla.attribution!) <= 1e-6 * vanilla.attribution!.maxAbs)
    #expect(maxDiff(smooth.map.heatmap, vanilla.map.heatmap) <= 1e-6)
    #expect(smooth.map.classIndex == vanilla.map.classIndex)
}

@Test func smoothGradIsTheMeanOfSingleRunsAndIndependentOfTheBatchSize() throws {
    let x = try npy(root.appendingPathComponent(extraManifest.images[2].input))
    let req = try request()
    let options = CAMOptions(gradientBatchSize: 25, smoothGradSamples: 6, seed: 42)
    let batched = try model.network.smoothGrad(x, req, options: options)
    var one = options
    one.gradientBatchSize = 1
    let single = try model.network.smoothGrad(x, req, options: one)
    #expect(batched.attribution!.maxAbsDifference(single.attribution!) <= 1e-6 * batched.attribution!.maxAbs)
    // The mean of vanilla saliency gradients, one noisy copy at a time.
    let copies = model.network.smoothGradInputs(x, options: options)
    #expect(copies.count == 6)
    var mean = [Float](repeating: 0, count: x.count)
    for copy in copies {
        let g = try model.network.saliency(
            copy,
            CAMRequest(
                layerNode: req.layerNode, scoreNode: req.scoreNode,
                classIndex: batched.map.classIndex)
        ).attribution!
        for i in mean.indices { mean[i] += g.scalars[i] / 6 }
    }
    #expect(batched.attribution!.maxAbsDifference(Tensor(shape: x.shape, scalars: mean)) <= 1e-5 * batched.attribution!.maxAbs)
    // The noise: seeded, σ = 0.15 × (max − min), and really there.
    let again = model.network.smoothGradInputs(x, options: options)
    #expect(again == copies)
    let other = model.network.smoothGradInputs(x, options: CAMOptions(smoothGradSamples: 6, seed: 43))
    #expect(other != copies)
    let range = x.scalars.max()! - x.scalars.min()!
    let noise = copies.flatMap { c in zip(c.scalars, x.scalars).map { Double($0 - $1) } }
    let sd = (noise.reduce(0) { $0 + $1 * $1 } / Double(noise.count)).squareRoot()
    #expect(abs(sd - 0.15 * Double(range)) <= 0.02 * 0.15 * Double(range), "noise sd \(sd)")
    // Noise changes the map.
    let vanilla = try model.network.saliency(x, req)
    #expect(maxDiff(vanilla.map.heatmap, batched.map.heatmap) > 0.01)
}

// MARK: - Dispatch, errors, pictures

@Test func everyMethodDispatchesAndIsNormalised() throws {
    let x = try npy(root.appendingPathComponent(extraManifest.images[1].input))
    #expect(
        CAMMethod.allCases.map(\.rawValue) == [
            "gradcam", "gradcam++", "scorecam", "layercam", "eigencam", "xgradcam", "hirescam",
            "gradcam-elementwise", "ablationcam", "saliency", "smoothgrad", "integrated-gradients",
            "guided-backprop", "guided-gradcam",
        ])
    for method in CAMMethod.allCases {
        let r = try model.network.classActivationMap(
            x, try request(), method: method,
            options: CAMOptions(smoothGradSamples: 4))
        #expect(r.method == method)
        #expect(r.resolution == method.resolution)
        let side = method.resolution == .layer ? 8 : 32
        #expect(r.map.height == side && r.map.width == side && r.map.heatmap.count == side * side, "\(method)")
        #expect(r.map.heatmap.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(method)")
        #expect(r.map.heatmap.max()! == 1, "\(method)")
        #expect(r.map.classIndex == extraManifest.images[1].top1)
        #expect((r.attribution != nil) == (method.resolution == .input), "\(method)")
        // The old entry point forwards to the same computation.
        let old = try model.network.gradCAM(x, try request(), method: method)
        if method != .smoothgrad { #expect(maxDiff(old.heatmap, r.map.heatmap) <= 1e-6, "\(method)") }
    }
}

@Test func cAMErrors() throws {
    let x = try npy(root.appendingPathComponent(extraManifest.images[0].input))
    let two = Tensor.concatenateBatches([x, x])
    for method in CAMMethod.allCases {
        #expect(throws: VisualizationError.self) { _ = try model.network.classActivationMap(two, try request(), method: method) }
        #expect(throws: RequestError.classOutOfRange(10, count: 10)) {
            _ = try model.network.classActivationMap(x, try request(10), method: method)
        }
    }
    let dense = CAMRequest(layerNode: try model.network.node(named: "flatten"), scoreNode: model.logitsNode!)
    for method in [CAMMethod.scorecam, .layercam, .eigencam, .xgradcam, .hirescam, .gradcamElementwise, .ablationcam] {
        #expect(throws: RequestError.self) { _ = try model.network.classActivationMap(x, dense, method: method) }
    }
}

@Test func heatmapPicturesAndTheBookOverlay() throws {
    let map = ClassActivationMap(heatmap: [0, 0.5, 1, 0.25], height: 2, width: 2, classIndex: 0, score: 0)
    let heat = try camHeatmapImage(map, width: 6, height: 4)
    #expect(heat.width == 6 && heat.height == 4 && heat.channels == 3)
    let up = try upsampleBilinear(map.heatmap, width: 2, height: 2, toWidth: 6, toHeight: 4)
    for p in 0..<24 {
        #expect(Array(heat.pixels[(3 * p)..<(3 * p + 3)]) == Colormap.jet.color(Colormap.index(normalized: up[p])))
    }
    // Top-left is the map's 0 (jet's dark blue), bottom-right near 0.25.
    #expect(heat.pixel(x: 0, y: 0) == Colormap.jet.color(0))
    var photo = Image(width: 6, height: 4, channels: 3, fill: [100, 200, 250])
    photo.pixels[0] = 10
    let over = try camOverlay(map, on: photo)
    for i in 0..<over.pixels.count {
        let expected = min(255, (Float(heat.pixels[i]) * 0.4 + Float(photo.pixels[i])).rounded())
        #expect(Float(over.pixels[i]) == expected)
    }
    #expect(over.pixels.contains(255))  // clipped, not wrapped
    let grey = Image(width: 6, height: 4, channels: 1, fill: [100])
    let overGrey = try camOverlay(map, on: grey, alpha: 0.0)
    #expect(overGrey.channels == 3 && overGrey.pixels.allSatisfy { $0 == 100 })
    // A map already at the image size is drawn as is.
    let same = try camHeatmapImage(map, width: 2, height: 2, colormap: .grey)
    #expect(
        same.pixels.enumerated().allSatisfy {
            $0.element == Colormap.grey.color(Colormap.index(normalized: map.heatmap[$0.offset / 3]))[$0.offset % 3]
        })
    #expect(throws: VisualizationError.self) { _ = try camOverlay(map, on: Image(width: 2, height: 2, channels: 4)) }
    // Display percentile: values over the percentile saturate, the rest scale up.
    #expect(percentile([4, 1, 3, 2], 50) == 2 && percentile([4, 1, 3, 2], 100) == 4 && percentile([4, 1, 3, 2], 1) == 1)
    let peaked = ClassActivationMap(heatmap: [0.01, 0.02, 0.04, 1], height: 2, width: 2, classIndex: 0, score: 0)
    let clipped = try camHeatmapImage(peaked, width: 2, height: 2, colormap: .grey, displayPercentile: 75)
    #expect(clipped.pixels == [63, 63, 63, 127, 127, 127, 255, 255, 255, 255, 255, 255])
    let plain = try camHeatmapImage(peaked, width: 2, height: 2, colormap: .grey)
    #expect(plain.pixels[0] == 2 && plain.pixels[9] == 255)
    #expect(throws: VisualizationError.self) { _ = try camHeatmapImage(peaked, width: 2, height: 2, displayPercentile: 0) }
}

@Test func scoreCAMOnABinarySigmoidHeadUsesTheSigmoid() throws {
    // input [2, 2, 2] (the "layer" is the input itself) → Flatten → Dense(1) → sigmoid.
    let kernel = Tensor(shape: [8, 1], scalars: [1, -2, 0.5, 3, -1, 2, 0.25, -0.5])
    let nodes: [Network.Node] = [
        .init(id: 0, layer: nil, inputs: [], outputShape: [2, 2, 2]),
        .init(id: 1, layer: Flatten(name: "flatten"), inputs: [0], outputShape: [8]),
        .init(
            id: 2, layer: Dense(name: "dense", kernel: kernel, bias: Tensor(shape: [1], scalars: [-0.25])), inputs: [1], outputShape: [1]),
        .init(id: 3, layer: Activation(name: "dense/activation", function: .sigmoid), inputs: [2], outputShape: [1]),
    ]
    let net = try Network(nodes: nodes, outputNode: 3)
    let x = Tensor(shape: [1, 2, 2, 2], scalars: [0.2, 0.7, 0.9, 0.1, 0.4, 0.3, 0.6, 0.8])
    // Channel c's mask is its own min-max normalisation (2×2 → 2×2 is the identity),
    // applied to both input channels; weight w_c = σ(dense(x ⊙ H_c)).
    var w = [Float](repeating: 0, count: 2)
    for c in 0..<2 {
        let a = (0..<4).map { x.scalars[$0 * 2 + c] }
        let (lo, hi) = (a.min()!, a.max()!)
        var logit: Float = -0.25
        for p in 0..<4 { for q in 0..<2 { logit += x.scalars[p * 2 + q] * (a[p] - lo) / (hi - lo) * kernel.scalars[p * 2 + q] } }
        w[c] = 1 / (1 + exp(-logit))
    }
    let expected = (0..<4).map { max(w[0] * x.scalars[$0 * 2] + w[1] * x.scalars[$0 * 2 + 1], 0) }
    #expect(net.probabilityRule(scoreNode: 3, outputs: 1) == .read)
    #expect(net.probabilityRule(scoreNode: 2, outputs: 1) == .sigmoid)
    for scoreNode in [2, 3] {
        let cam = try net.scoreCAM(x, CAMRequest(layerNode: 0, scoreNode: scoreNode))
        #expect(maxDiff(cam.heatmap, expected.map { $0 / expected.max()! }) <= 1e-6, "score node \(scoreNode)")
    }
    // A softmax over one logit would weigh every channel 1: a different map.
    let equal = (0..<4).map { x.scalars[$0 * 2] + x.scalars[$0 * 2 + 1] }
    #expect(maxDiff(equal.map { $0 / equal.max()! }, expected.map { $0 / expected.max()! }) > 0.01)
}
