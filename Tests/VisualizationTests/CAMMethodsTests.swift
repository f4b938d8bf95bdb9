import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// XGrad-CAM, HiResCAM, Grad-CAM element-wise and Ablation-CAM against their NumPy/TF
/// restatements (tools/fixtures/make_cam_methods_fixtures.py, pytorch-grad-cam 1.5's
/// formulas) on the committed CAM fixture model and inputs (Tests/Fixtures/visualization,
/// cam_methods/). Tolerance: 1e-4 max |Δ| on the maps normalised to [0, 1].
private let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/visualization")
private let folder = root.appendingPathComponent("cam_methods")

private struct MethodsManifest: Decodable {
    struct Image: Decodable {
        struct Case: Decodable {
            let name: String
            let class_index: Int
            let score: String
            let score_value: Float
            let xgradcam: String
            let xgradcam_all_zero: Bool
            let hirescam: String
            let hirescam_all_zero: Bool
            let gradcam_elementwise: String
            let gradcam_elementwise_all_zero: Bool
            let ablationcam: String
            let ablationcam_all_zero: Bool
            let ablation_scores: String

            func reference(_ method: CAMMethod) -> (file: String, allZero: Bool) {
                switch method {
                case .xgradcam: return (xgradcam, xgradcam_all_zero)
                case .hirescam: return (hirescam, hirescam_all_zero)
                case .gradcamElementwise: return (gradcam_elementwise, gradcam_elementwise_all_zero)
                default: return (ablationcam, ablationcam_all_zero)
                }
            }
        }
        let name: String
        let input: String
        let cases: [Case]
    }
    let layer: String
    let images: [Image]
}

private let manifest: MethodsManifest = {
    let data = try! Data(contentsOf: folder.appendingPathComponent("manifest.json"))
    return try! JSONDecoder().decode(MethodsManifest.self, from: data)
}()

private let model: KerasModel = try! KerasModel.load(contentsOf: root.appendingPathComponent("cam_classifier.k3.h5"))

private func npy(_ url: URL) throws -> Tensor { try Tensor.readNPY(contentsOf: url) }

private func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

private func request(_ c: MethodsManifest.Image.Case) throws -> CAMRequest {
    CAMRequest(
        layerNode: try model.network.node(named: manifest.layer),
        scoreNode: c.score == "logit" ? try #require(model.logitsNode) : model.network.outputNode, classIndex: c.class_index)
}

@Test(arguments: [CAMMethod.xgradcam, .hirescam, .gradcamElementwise, .ablationcam])
func newCAMMethodMatchesItsReference(method: CAMMethod) throws {
    var checked = 0
    var worst: Float = 0
    for image in manifest.images {
        let x = try npy(root.appendingPathComponent(image.input))
        for c in image.cases {
            let result = try model.network.classActivationMap(x, try request(c), method: method, options: CAMOptions(batchSize: 5))
            let reference = c.reference(method)
            let expected = try npy(folder.appendingPathComponent(reference.file))
            #expect(result.method == method && result.resolution == .layer)
            #expect(result.map.height == 8 && result.map.width == 8)
            #expect(result.map.classIndex == c.class_index)
            #expect(abs(result.map.score - c.score_value) <= 1e-4 * (1 + abs(c.score_value)), "\(c.name): score")
            let d = maxDiff(result.map.heatmap, expected.scalars)
            worst = max(worst, d)
            #expect(d <= 1e-4, "\(c.name) \(method.rawValue): max |Δ| = \(d)")
            #expect((result.map.heatmap.max() == 0) == reference.allZero, "\(c.name) \(method.rawValue): all zero?")
            checked += 1
        }
    }
    #expect(checked == 7)
    print("\(method.rawValue): worst max |Δ| vs reference over \(checked) cases = \(worst)")
}

@Test func theNewMethodsDifferFromEachOther() throws {
    // Guards against one method silently computing another's map: on img1's top class
    // every pair of the four (and Grad-CAM, Layer-CAM) differs by more than the tolerance —
    // except Layer-CAM and Grad-CAM element-wise, which are equal where A ≥ 0, as after this
    // layer's ReLU: relu(g)·A = relu(g·A).
    let image = manifest.images[1]
    let c = image.cases[0]
    let x = try npy(root.appendingPathComponent(image.input))
    let methods: [CAMMethod] = [.gradcam, .layercam, .xgradcam, .hirescam, .gradcamElementwise, .ablationcam]
    let maps = try methods.map { try model.network.classActivationMap(x, try request(c), method: $0).map.heatmap }
    for i in maps.indices {
        for j in maps.indices where j > i {
            let d = maxDiff(maps[i], maps[j])
            if methods[i] == .layercam && methods[j] == .gradcamElementwise {
                #expect(d <= 1e-6, "Layer-CAM and Grad-CAM element-wise on a ReLU output: max |Δ| = \(d)")
            } else {
                #expect(d > 1e-3, "\(methods[i].rawValue) vs \(methods[j].rawValue)")
            }
        }
    }
    // On a BatchNormalization output (negative values) the two differ.
    let residual = try KerasModel.load(contentsOf: root.deletingLastPathComponent().appendingPathComponent("keras/residual.keras"))
    let rx = try npy(root.deletingLastPathComponent().appendingPathComponent("keras/residual.input.npy"))
    let one = Tensor(shape: [1] + rx.shape.dropFirst(), scalars: Array(rx.scalars.prefix(rx.sampleCount)))
    let bn = CAMRequest(layerNode: try residual.network.node(named: "b2_proj_bn"), scoreNode: try #require(residual.logitsNode))
    let trace = try residual.network.forward(one, stopAfter: bn.layerNode)
    #expect(try #require(trace[bn.layerNode]).scalars.contains { $0 < 0 })
    let layer = try residual.network.classActivationMap(one, bn, method: .layercam).map.heatmap
    let elementwise = try residual.network.classActivationMap(one, bn, method: .gradcamElementwise).map.heatmap
    #expect(maxDiff(layer, elementwise) > 1e-3)
}

@Test func ablatedScoresEqualTensorFlows() throws {
    // The engine's pass resumed at the layer, on the 16 ablated feature maps, against
    // TensorFlow running the layers above `last_conv` on the same maps.
    let network = model.network
    let layer = try network.node(named: manifest.layer)
    for image in manifest.images {
        let x = try npy(root.appendingPathComponent(image.input))
        for c in image.cases {
            let scoreNode = try request(c).scoreNode
            let context = try network.forward(x, stopAfter: scoreNode, keep: [layer])
            let a = try #require(context[layer])
            let channels = a.shape[3]
            var batch = [Float]()
            for ch in 0..<channels {
                var copy = a.scalars
                for p in 0..<(copy.count / channels) { copy[p * channels + ch] = 0 }
                batch += copy
            }
            let out = try network.forward(
                resumingAt: layer, with: Tensor(shape: [channels] + a.shape.dropFirst(), scalars: batch), context: context,
                stopAfter: scoreNode)
            let s = try #require(out[scoreNode])
            let ours = (0..<channels).map { s.scalars[$0 * s.sampleCount + c.class_index] }
            let keras = try npy(folder.appendingPathComponent(c.ablation_scores)).scalars
            #expect(maxDiff(ours, keras) <= 1e-5 * (1 + keras.map(abs).max()!), "\(c.name)")
        }
    }
}

@Test(arguments: [1, 3, 16])
func ablationCAMDoesNotDependOnTheBatchSize(batchSize: Int) throws {
    let image = manifest.images[2]
    let x = try npy(root.appendingPathComponent(image.input))
    let r = try request(image.cases[0])
    let one = try model.network.ablationCAM(x, r, batchSize: 16)
    let other = try model.network.ablationCAM(x, r, batchSize: batchSize)
    #expect(maxDiff(one.heatmap, other.heatmap) <= 1e-6)
}

@Test func resumedForwardThroughASkipConnectionEqualsTheWholePass() throws {
    // A residual block: resuming inside it reads the skip branch from the context,
    // repeated for every sample of the batch.
    let keras = try KerasModel.load(
        contentsOf: root.deletingLastPathComponent().appendingPathComponent("keras/residual.keras"))
    let network = keras.network
    let out = network.outputNode
    let start = try #require(
        (1..<out).first { network.resumeInputs(from: $0, stopAfter: out).contains { $0 > 0 } },
        "the residual fixture has a node whose resumed pass reads a skip branch")
    let x = try npy(root.deletingLastPathComponent().appendingPathComponent("keras/residual.input.npy"))
    let one = Tensor(shape: [1] + x.shape.dropFirst(), scalars: Array(x.scalars.prefix(x.sampleCount)))
    let whole = try network.forward(one, keep: network.resumeInputs(from: start, stopAfter: out).union([start]))
    let value = try #require(whole[start])
    let resumed = try network.forward(
        resumingAt: start, with: Tensor.concatenateBatches([value, value, value]), context: whole, stopAfter: out)
    let y = try #require(resumed[out])
    let expected = try #require(whole[out])
    #expect(y.batch == 3)
    for n in 0..<3 {
        let sample = Array(y.scalars[(n * y.sampleCount)..<((n + 1) * y.sampleCount)])
        #expect(maxDiff(sample, expected.scalars) <= 1e-6)
    }
    // A context without the skip branch is refused, not read as zeros.
    #expect(throws: EngineError.self) {
        _ = try network.forward(resumingAt: start, with: value, context: Network.Trace(outputs: [start: value]), stopAfter: out)
    }
}
