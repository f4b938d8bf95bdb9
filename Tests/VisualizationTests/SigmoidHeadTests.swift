import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// A binary classifier ending in Dense(1, activation="sigmoid"), written by tf_keras (the
/// Keras 2 API, `.h5`) and by Keras 3 (`.keras`) with the same weights
/// (tools/fixtures/make_sigmoid_fixtures.py, Tests/Fixtures/visualization/sigmoid): its
/// class score is the logit by default, as a softmax head's is, and the probability with
/// post-activation — each gradient equal to TensorFlow's.
private let folder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/visualization/sigmoid")

private struct SigmoidManifest: Decodable {
    struct Image: Decodable {
        let name: String
        let input: String
        let logit: Float
        let probability: Float
        let logit_gradient_input: String
        let logit_gradient_layer: String
        let probability_gradient_input: String
        let probability_gradient_layer: String
    }
    let models: [String: String]
    let layer: String
    let images: [Image]
}

private let manifest: SigmoidManifest = {
    let data = try! Data(contentsOf: folder.appendingPathComponent("manifest.json"))
    return try! JSONDecoder().decode(SigmoidManifest.self, from: data)
}()

private func npy(_ name: String) throws -> Tensor { try Tensor.readNPY(contentsOf: folder.appendingPathComponent(name)) }

private func session(_ file: String) throws -> ModelSession {
    let url = folder.appendingPathComponent(file)
    return try ModelSession(keras: try KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
}

/// max |ours − keras| / max |keras|: the relative error the issue bounds by 1e-4.
private func relativeError(_ ours: Tensor, _ keras: Tensor) -> Float {
    precondition(ours.shape == keras.shape, "\(ours.shape) vs \(keras.shape)")
    let scale = keras.scalars.map(abs).max() ?? 0
    let diff = zip(ours.scalars, keras.scalars).map { abs($0 - $1) }.max() ?? 0
    return diff / scale
}

@Test(arguments: ["keras2-h5", "keras3-zip"])
func sigmoidHeadScoresTheLogitByDefaultAndTheProbabilityOnRequest(format: String) throws {
    let s = try session(try #require(manifest.models[format]))
    let network = s.network
    #expect(s.keras.head == .sigmoid)
    let logits = try #require(s.keras.logitsNode)
    #expect(s.scoreNode(postActivation: false) == logits)
    #expect(s.scoreNode(postActivation: true) == network.outputNode)
    #expect(s.scoreKind(postActivation: false) == "logit" && s.scoreKind(postActivation: true) == "probability")
    let layer = try network.node(named: manifest.layer)
    for image in manifest.images {
        let x = try npy(image.input)
        for postActivation in [false, true] {
            let from = s.scoreNode(postActivation: postActivation)
            let trace = try network.forward(x, stopAfter: from, keepAll: true)
            let score = try #require(trace[from]).scalars[0]
            let expectedScore = postActivation ? image.probability : image.logit
            #expect(
                abs(score - expectedScore) <= 1e-4 * (1 + abs(expectedScore)), "\(format) \(image.name): score \(score) vs \(expectedScore)"
            )
            let seed = Tensor(shape: [1, 1], scalars: [1])
            for (to, file) in [
                (0, postActivation ? image.probability_gradient_input : image.logit_gradient_input),
                (layer, postActivation ? image.probability_gradient_layer : image.logit_gradient_layer),
            ] {
                let g = try network.backward(from: from, seed: seed, to: to, trace: trace)
                let e = relativeError(g, try npy(file))
                #expect(e <= 1e-4, "\(format) \(image.name) post-activation \(postActivation) → \(file): relative error \(e)")
            }
        }
        // The two are far apart at this saturation (p ≈ 0.98): the test tells them apart.
        let logitGradient = try npy(image.logit_gradient_layer).scalars.map(abs).max()!
        let probabilityGradient = try npy(image.probability_gradient_layer).scalars.map(abs).max()!
        #expect(probabilityGradient < 0.05 * logitGradient)
    }
}

@Test func sigmoidHeadHeatmapSaysWhichScoreItUsed() throws {
    let s = try session(try #require(manifest.models["keras2-h5"]))
    let image = manifest.images[0]
    let x = try npy(image.input)
    for postActivation in [false, true] {
        var request = HeatmapRequest()
        request.postActivation = postActivation
        request.format = .json
        request.show = .heatmap
        let rendered = try s.render(request, input: .tensor(x))
        #expect(rendered[fact: "Score-Kind"] == (postActivation ? "probability" : "logit"))
        let score = try #require(rendered[fact: "Score"].flatMap(Float.init))
        let expected = postActivation ? image.probability : image.logit
        #expect(abs(score - expected) <= 1e-4 * (1 + abs(expected)), "score \(score) vs \(expected)")
        // The probability is the sigmoid's, whichever node was scored (a softmax of one
        // logit would say 1).
        let probability = try #require(rendered[fact: "Probability"].flatMap(Float.init))
        #expect(abs(probability - image.probability) <= 1e-5, "probability \(probability) vs \(image.probability)")
    }
    // The two requests are two pictures: two addresses.
    var a = HeatmapRequest()
    var b = HeatmapRequest()
    b.postActivation = true
    a = try a.canonical(for: s)
    b = try b.canonical(for: s)
    #expect(a.contentAddress(model: "m") != b.contentAddress(model: "m"))
}
