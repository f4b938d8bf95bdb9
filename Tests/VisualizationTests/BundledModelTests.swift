import Engine
import Foundation
import Imaging
import KerasFormat
import Testing

@testable import Visualization

/// The bundled EfficientNet-Lite0 on the sample photos, with ConvLens alone:
/// decode, resize, preprocess and predict, compared with Keras' top-5
/// (models/reference_top5.json, made by tools/model/efficientnet_lite0_eval.py).
private let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private struct Reference: Decodable {
    struct Entry: Decodable {
        let index: Int
        let prob: Float
    }
    struct Photo: Decodable {
        let file: String
        let top5: [String: [Entry]]
    }
    let photos: [Photo]
}

private let bundled: (model: KerasModel, profile: ModelProfile) = {
    let profile = try! ModelProfile.read(contentsOf: root.appendingPathComponent("models/efficientnet_lite0.json"))
    return (try! KerasModel.load(contentsOf: profile.modelURL), profile)
}()

private func probabilities(_ photo: String, resize: String) throws -> [Float] {
    var pipeline = try InputPipeline(profile: bundled.profile, model: bundled.model)
    pipeline.filter = try InputPipeline.filter(named: resize)
    let data = try Data(contentsOf: root.appendingPathComponent(photo))
    return try bundled.model.network.predict(pipeline.prepare(data).input).scalars
}

private func top(_ p: [Float], _ k: Int) -> [Int] {
    Array(p.indices.sorted { p[$0] > p[$1] }.prefix(k))
}

@Test func bundledModelHasProfileLabelsAndScaling() throws {
    #expect(bundled.profile.labels?.count == 1000)
    #expect(bundled.profile.labels?[285] == "Egyptian cat")
    let pipeline = try InputPipeline(profile: bundled.profile, model: bundled.model)
    #expect(pipeline.width == 224 && pipeline.height == 224)
    #expect(pipeline.preprocessing == .affine(scale: 1 / 128, offset: -127 / 128))
    #expect(bundled.model.logitsNode != nil)
}

@Test func catIsACatAndCoffeeIsCoffee() throws {
    let cat = top(try probabilities("public/samples/chelsea.png", resize: "pil_bilinear"), 5)
    #expect((281...285).contains(cat[0]), "cat photo top-1 is class \(cat[0])")
    let coffee = top(try probabilities("public/samples/coffee.png", resize: "pil_bilinear"), 5)
    // espresso 967, cup 968, coffee mug 504
    #expect(coffee.contains(967) && coffee.contains(968) && coffee.contains(504), "coffee photo top-5: \(coffee)")
}

@Test(arguments: ["pil_bilinear", "pil_nearest"])
func top5EqualsKerasOnEverySamplePhoto(resize: String) throws {
    let data = try Data(contentsOf: root.appendingPathComponent("models/reference_top5.json"))
    let reference = try JSONDecoder().decode(Reference.self, from: data)
    #expect(reference.photos.count >= 4)
    for photo in reference.photos {
        guard let keras = photo.top5[resize] else {
            Issue.record("no \(resize) reference for \(photo.file)")
            continue
        }
        let p = try probabilities(photo.file, resize: resize)
        #expect(top(p, 5) == keras.map(\.index), "\(photo.file) \(resize)")
        for entry in keras {
            // Same pixels in, same network: probabilities agree to float32 rounding
            // (the reference stores 6 decimals).
            #expect(abs(p[entry.index] - entry.prob) <= 2e-5, "\(photo.file) class \(entry.index): \(p[entry.index]) vs \(entry.prob)")
        }
    }
}

@Test func defaultHeatmapLayerIsTheLastConvAfterItsBNAndActivation() throws {
    // EfficientNet-Lite0 ends top_conv → top_bn → top_activation → pooling.
    #expect(defaultCAMLayer(of: bundled.model)?.name == "top_activation")
    // A conv with a fused activation, followed by pooling: the conv itself (as VGG16's block5_conv3).
    let cam = try KerasModel.load(contentsOf: root.appendingPathComponent("Tests/Fixtures/visualization/cam_classifier.k3.h5"))
    #expect(defaultCAMLayer(of: cam)?.name == "last_conv")
}

@Test func aConvolutionsActivatedOutputFollowsItsOwnBNAndActivationOnly() throws {
    func after(_ name: String, in model: KerasModel) throws -> String {
        activatedOutput(of: try #require(model.layers.first { $0.name == name }), in: model).name
    }
    #expect(try after("stem_conv", in: bundled.model) == "stem_activation")
    #expect(try after("block2a_expand_conv", in: bundled.model) == "block2a_expand_activation")
    #expect(try after("block2a_dwconv", in: bundled.model) == "block2a_activation")
    // A projection has BatchNorm and no activation; the next block's convolution is not a follow-up.
    #expect(try after("block1a_project_conv", in: bundled.model) == "block1a_project_bn")
    // Fused activation: the convolution is its own activated output.
    let cam = try KerasModel.load(contentsOf: root.appendingPathComponent("Tests/Fixtures/visualization/cam_classifier.k3.h5"))
    #expect(try after("last_conv", in: cam) == "last_conv")
}
