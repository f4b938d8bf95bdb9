import Engine
import Foundation
import Imaging
import KerasFormat
import Testing

@testable import Visualization

/// A model saved with a fixed 32×32 input and a Flatten + Dense head (VGG16 with its top,
/// in small; tools/fixtures/make_anysize_fixtures.py, Tests/Fixtures/visualization/anysize):
/// its convolutional base runs at other sizes with Keras' numbers, and a layer behind the
/// Flatten is refused by name at a size where it cannot be computed.
private let folder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/visualization/anysize")

private struct AnySizeManifest: Decodable {
    struct Size: Decodable {
        let size: Int
        let input: String
        let activations: [String: String]
        let filter: Int
        let gradient: String
        let step1: String
        let output: String?
    }
    let model: String
    let saved_size: Int
    let size_dependent_layer: String
    let fc1_sizes: [Int]
    let sizes: [Size]
}

private let manifest: AnySizeManifest = {
    let data = try! Data(contentsOf: folder.appendingPathComponent("manifest.json"))
    return try! JSONDecoder().decode(AnySizeManifest.self, from: data)
}()

private let session: ModelSession = {
    let url = folder.appendingPathComponent(manifest.model)
    return try! ModelSession(keras: try! KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
}()

private func npy(_ name: String) throws -> Tensor { try Tensor.readNPY(contentsOf: folder.appendingPathComponent(name)) }

/// The fixtures' tolerance: max |ours − keras| ≤ 1e-4 × (1 + max |keras|).
private func expectClose(_ ours: Tensor, _ keras: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(ours.shape == keras.shape, "\(what): shape \(ours.shape) vs \(keras.shape)", sourceLocation: sourceLocation)
    guard ours.shape == keras.shape else { return }
    let bound = 1e-4 * (1 + keras.maxAbs)
    #expect(
        ours.maxAbsDifference(keras) <= bound, "\(what): differs by \(ours.maxAbsDifference(keras)) > \(bound)",
        sourceLocation: sourceLocation)
}

@Test func theFixtureIsAFixedInputModelWithAFlattenHead() throws {
    #expect(session.network.inputShape == [32, 32, 3])
    #expect(session.hasFixedInputSize)
    let saved = try #require(manifest.sizes.first { $0.size == manifest.saved_size })
    let output = try session.network.predict(try npy(saved.input))
    expectClose(output, try npy(try #require(saved.output)), "output at the saved size")
}

@Test(arguments: manifest.sizes)
private func theConvolutionalBaseEqualsKerasAtEverySize(_ size: AnySizeManifest.Size) throws {
    let network = try session.filterNetwork(height: size.size, width: size.size)
    #expect((network === session.network) == (size.size == manifest.saved_size), "the saved network at the saved size only")
    let x = try npy(size.input)
    for (layer, file) in size.activations.sorted(by: { $0.key < $1.key }) {
        let node = try session.layer(named: layer).nodeId
        #expect(session.network.sizeDependence(of: node, height: size.size, width: size.size) == nil)
        // A fused plan (the stop node only) and the unfused one (everything kept).
        let fused = try network.forward(x, stopAfter: node)[node]!
        let unfused = try network.forward(x, stopAfter: node, keepAll: true)[node]!
        expectClose(fused, try npy(file), "\(layer) at \(size.size), fused")
        expectClose(unfused, try npy(file), "\(layer) at \(size.size), unfused")
    }
    // d mean(conv3[..., f]) / d input, as the book's ascent takes it, equals TensorFlow's.
    let conv3 = try session.layer(named: "conv3").nodeId
    let trace = try network.forward(x, stopAfter: conv3, keepAll: true)
    let out = try #require(trace[conv3])
    let (hw, c) = (out.shape[1] * out.shape[2], out.shape[3])
    var seed = Tensor(zeros: out.shape)
    for p in 0..<hw { seed.scalars[p * c + size.filter] = 1 / Float(hw) }
    expectClose(try network.backward(from: conv3, seed: seed, to: 0, trace: trace), try npy(size.gradient), "gradient at \(size.size)")
}

@Test(arguments: manifest.sizes)
private func aFilterAtAnotherSizeHasThatSizeAndKerasGradient(_ size: AnySizeManifest.Size) throws {
    // One book step from the fixture's input: x + g / (rms(g) + 1e-5), g from TensorFlow.
    var request = FilterRequest(layer: "conv3", first: size.filter)
    request.size = size.size
    request.steps = 1
    request.format = .npy
    let canonical = try request.canonical(for: session)
    #expect(canonical.size == size.size, "the size asked for is kept")
    let rendering = try session.renderFilters(request, startImage: try npy(size.input))
    expectClose(rendering.images, try npy(size.step1), "one ascent step at \(size.size)")
    #expect(rendering.picture.width == size.size && rendering.picture.height == size.size)
    let rendered = try session.render(request, startImage: try npy(size.input))
    #expect(rendered[fact: "Size"] == "\(size.size)x\(size.size)")
}

@Test func withoutASizeAFixedInputModelDrawsAtItsOwn() throws {
    let canonical = try FilterRequest(layer: "conv3").canonical(for: session, anySizeDefault: 150)
    #expect(canonical.size == 32, "the server's default for any-size models does not apply")
    var request = FilterRequest(layer: "conv3", first: 0, count: 2)
    request.steps = 2
    request.size = 150
    request.cols = 2
    let grid = try session.renderFilters(request)
    #expect(grid.images.shape == [2, 150, 150, 3], "the book's 150 px, asked for explicitly")
}

@Test func aLayerBehindTheFlattenIsRefusedByNameAtAnotherSize() throws {
    for (layer, method) in [("fc1", FilterMethod.lucid), ("predictions", .lucid), ("fc1", .book)] {
        var request = FilterRequest(layer: layer)
        request.method = method
        request.size = 48
        do {
            _ = try request.canonical(for: session)
            Issue.record("\(layer) at 48 was not refused")
        } catch RequestError.sizeDependentLayer(let named, let detail) {
            #expect(named == layer)
            #expect(detail.contains("'\(manifest.size_dependent_layer)' (Flatten)"), "\(detail)")
            #expect(detail.contains("48×48") && detail.contains("(32×32)"), "\(detail)")
            let (lo, hi) = (manifest.fc1_sizes[0], manifest.fc1_sizes[1])
            #expect(detail.contains("works at size=\(lo)...\(hi);"), "the sizes that work, as Keras' shapes give them: \(detail)")
            #expect(detail.contains("method=lucid") == (method == .book), "a flat layer needs lucid: \(detail)")
        }
    }
    // Sizes where the Flatten's length is the saved one work, at the size asked for.
    var request = FilterRequest(layer: "fc1", first: 3)
    (request.method, request.size, request.steps) = (.lucid, manifest.fc1_sizes[1], 2)
    let rendering = try session.renderFilters(request)
    #expect(rendering.picture.width == manifest.fc1_sizes[1])
    #expect(
        session.network.squareSizes(computing: try session.layer(named: "fc1").nodeId, in: FilterRequest.sizeRange)
            == [manifest.fc1_sizes[0]...manifest.fc1_sizes[1]])
    #expect(
        session.network.squareSizes(computing: try session.layer(named: "conv3").nodeId, in: FilterRequest.sizeRange)
            == [FilterRequest.sizeRange])
}

@Test func aGlobalPoolingHeadRunsAtAnySizeEndToEnd() throws {
    // The bundled model is fixed 224 × 224 but headed by global pooling: every layer, the
    // class logits too, runs at another size.
    let repository = folder.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let bundled = try ModelSession(
        profile: ModelProfile.read(contentsOf: repository.appendingPathComponent("models/efficientnet_lite0.json")))
    let predictions = try bundled.layer(named: "predictions").nodeId
    #expect(bundled.network.sizeDependence(of: predictions, height: 150, width: 150) == nil)
    var request = FilterRequest(layer: "predictions")
    (request.method, request.size) = (.lucid, 150)
    #expect(try request.canonical(for: bundled).size == 150)
}
