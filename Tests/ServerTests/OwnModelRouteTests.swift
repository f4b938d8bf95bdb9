import Engine
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

    /// The keras.io U-Net (Conv2DTranspose, UpSampling2D, residual Adds, a per-pixel softmax)
    /// from a photo: its default map explains the class owning the most cells, scored over
    /// those cells, and equals TensorFlow's Grad-CAM of that target (make_layer_fixtures.py,
    /// `segmentation_gradcam`) within 1e-4 × (1 + max).
    @Test func aUNetsHeatmapIsTensorFlowsMapOfItsSegmentation() async throws {
        let folder = root.appendingPathComponent("Tests/Fixtures/keras_layers")
        let photos = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("photos.json")))
        let reference = try #require(((photos as? [String: Any])?["unet_pets"] as? [String: Any])?["segmentation"] as? [String: Any])
        let expected = try Tensor.readNPY(contentsOf: folder.appendingPathComponent(try #require(reference["gradcam"] as? String))).scalars
        let layer = try #require(reference["layer"] as? String)
        let (topClass, cells) = (try #require(reference["class"] as? Int), try #require(reference["cells"] as? Int))
        let tolerance = 1e-4 * (1 + (expected.map(abs).max() ?? 0))
        for file in ["unet_pets.keras", "unet_pets.k2.h5"] {
            try await withServer(model: own(file)) { _, client in
                let r = try await client.post("/heatmap?format=json", image: try sample("chelsea.png"))
                #expect(r.status == .ok, "\(file): \(r.text)")
                #expect(r.header("X-Layer") == layer, "\(file)")
                #expect(r.header("X-Class") == "\(topClass)", "\(file)")
                #expect(r.header("X-Target-Cells") == "\(cells)", "\(file)")
                let map = try #require(try r.json()["heatmap"] as? [Double])
                #expect(map.count == expected.count, "\(file)")
                let worst = zip(map, expected).map { abs(Float($0) - $1) }.max() ?? .infinity
                #expect(worst <= tolerance, "\(file): max |Δ| \(worst)")
                let overlay = try await client.post("/heatmap", image: try sample("chelsea.png"))
                #expect(overlay.status == .ok, "\(file): \(overlay.text)")
                #expect(try decodeImage(overlay.data).width == 451, "\(file)")
            }
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
