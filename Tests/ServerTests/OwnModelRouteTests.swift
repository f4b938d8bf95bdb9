import Foundation
import Imaging
import KerasFormat
import Server
import Testing
import Visualization

/// Users' own models behind the real server (`serve --model FILE` builds the same
/// service): the keras.io tutorials' CNNs (tools/fixtures/make_layer_fixtures.py)
/// answer POST /heatmap, /activations and /api/predict from a colour photo — the grey
/// MNIST convnet takes it in grey — and draw filters; /api/model says which
/// preprocessing was chosen and why.
private func own(_ file: String) -> (session: ModelSession, digest: String) {
    let url = root.appendingPathComponent("Tests/Fixtures/keras_layers/\(file)")
    let session = try! ModelSession(keras: try! KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
    return (session, try! session.modelDigest())
}

@Suite(.timeLimit(.minutes(5))) struct OwnModelRouteTests {
    @Test(arguments: ["grey_mnist.keras", "augment_front.k2.h5", "anysize_resizing.k3.h5", "merges.keras"])
    func aUsersModelAnswersEveryPictureFromAPhoto(_ file: String) async throws {
        try await withServer(model: own(file)) { _, client in
            let photo = try sample("chelsea.png")
            let heatmap = try await client.post("/heatmap", image: photo)
            #expect(heatmap.status == .ok, "\(file): \(heatmap.text)")
            let overlay = try decodeImage(heatmap.data)
            #expect(overlay.channels == 3 && overlay.width > 0, "\(file)")
            let grid = try await client.post("/activations", image: photo)
            #expect(grid.status == .ok, "\(file): \(grid.text)")
            let predict = try await client.post("/api/predict", image: photo)
            #expect(predict.status == .ok, "\(file): \(predict.text)")
            let model = try await client.get("/api/model")
            #expect(model.text.contains("preprocessing_source"), "\(file)")
            #expect(model.text.contains("scales its pixels itself") == !file.hasPrefix("merges"), "\(file): \(model.text)")
            try await client.expectHealthy()
        }
    }

    @Test func aGreyModelsFiltersAreDrawn() async throws {
        try await withServer(model: own("grey_mnist.keras")) { _, client in
            let r = try await client.get("/filters/conv2/3?steps=2")
            #expect(r.status == .ok, "\(r.text)")
            #expect(try decodeImage(r.data).width == 28)
        }
    }
}
