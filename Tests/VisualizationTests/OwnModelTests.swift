import Engine
import Foundation
import Imaging
import KerasFormat
import Testing

@testable import Visualization

/// Users' own models fed a real photo as a Keras user feeds it
/// (tools/fixtures/make_layer_fixtures.py, `photos.json`): a grey 28×28 MNIST convnet gets
/// the photo in grey as `load_img(color_mode="grayscale")` gives it; a model that resizes
/// inside gets the photo at its own size; both say why they take raw pixels.
private let folder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/keras_layers")
private let root = folder.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private struct PhotoReference: Decodable {
    let photo: String
    let input: String
    let output: String
}

private func reference(_ model: String) throws -> (photo: Data, input: Tensor, output: Tensor) {
    let refs = try JSONDecoder().decode(
        [String: PhotoReference].self, from: Data(contentsOf: folder.appendingPathComponent("photos.json")))
    let r = try #require(refs[model])
    return (
        try Data(contentsOf: root.appendingPathComponent(r.photo)),
        try Tensor.readNPY(contentsOf: folder.appendingPathComponent(r.input)),
        try Tensor.readNPY(contentsOf: folder.appendingPathComponent(r.output))
    )
}

private func session(_ file: String) throws -> ModelSession {
    let url = folder.appendingPathComponent(file)
    return try ModelSession(keras: try KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
}

@Suite struct OwnModelTests {
    @Test(arguments: ["grey_mnist.keras", "grey_mnist.k2.h5"])
    func greyModelTakesThePhotoInGreyAsKerasLoadsIt(_ file: String) throws {
        let s = try session(file)
        let (photo, kerasInput, kerasOutput) = try reference("grey_mnist")
        let pipeline = try s.imagePipeline()
        #expect(pipeline.layout == .grey)
        #expect(pipeline.preprocessingSource.contains("'rescale'"), "\(pipeline.preprocessingSource)")
        let (x, photoRGB) = try s.prepare(.image(photo), limits: RenderLimits())
        // Pillow's convert("L") and bilinear resize, to the byte.
        #expect(x.shape == kerasInput.shape)
        #expect(x.scalars == kerasInput.scalars)
        #expect(photoRGB?.channels == 3)
        let y = try s.network.predict(x)
        #expect(y.maxAbsDifference(kerasOutput) <= 1e-4 * (1 + kerasOutput.maxAbs))

        let heatmap = try s.render(HeatmapRequest(), input: .image(photo))
        #expect(heatmap.format == .png)
        #expect(heatmap.body.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        var grid = ActivationsRequest()
        grid.layer = "conv1"
        #expect(try s.render(grid, input: .image(photo)).body.starts(with: [0x89, 0x50, 0x4E, 0x47]))
    }

    @Test(arguments: ["anysize_resizing.keras", "anysize_resizing.k2.h5", "anysize_resizing.k3.h5"])
    func modelThatResizesInsideGetsThePhotoAtItsOwnSize(_ file: String) throws {
        let s = try session(file)
        let (photo, kerasInput, kerasOutput) = try reference("anysize_resizing")
        let pipeline = try s.imagePipeline()
        #expect(pipeline.ownSize)
        #expect(pipeline.preprocessingSource.contains("'rescale'"), "\(pipeline.preprocessingSource)")
        let (x, _) = try s.prepare(.image(photo), limits: RenderLimits())
        #expect(x.shape == kerasInput.shape)
        #expect(x.scalars == kerasInput.scalars)
        let y = try s.network.predict(x)
        #expect(y.maxAbsDifference(kerasOutput) <= 1e-4 * (1 + kerasOutput.maxAbs))
        let heatmap = try s.render(HeatmapRequest(), input: .image(photo))
        #expect(heatmap.body.starts(with: [0x89, 0x50, 0x4E, 0x47]))
    }

    @Test func aPhotoLargerThanTheOwnSizeBoundIsReducedFirst() throws {
        let s = try session("anysize_resizing.keras")
        let big = Image(width: 4000, height: 3000, channels: 3, fill: [90, 120, 200])
        let (x, resized) = try s.imagePipeline().prepare(big)
        #expect(resized.width * resized.height <= InputPipeline.ownSizeMaxPixels)
        #expect(abs(Double(resized.width) / Double(resized.height) - 4.0 / 3.0) < 0.01)
        #expect(x.shape == [1, resized.height, resized.width, 3])
    }

    @Test func augmentedAndNestedModelsAnswerHeatmapsFromPhotos() throws {
        for file in ["augment_front.keras", "transfer_nested.k2.h5", "merges.k3.h5"] {
            let s = try session(file)
            let photo = try Data(contentsOf: root.appendingPathComponent("public/samples/chelsea.png"))
            let heatmap = try s.render(HeatmapRequest(), input: .image(photo))
            #expect(heatmap.body.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(file)")
        }
    }
}

/// The photo a model gets is the one `keras.utils.load_img` gives (Pillow): alpha dropped,
/// EXIF orientation and gAMA ignored, 16-bit samples by their high byte — bit for bit on
/// both committed corpora (Tests/Fixtures/images `keras_load_img`, and Tests/Fixtures/decoding:
/// tools/fixtures/make_decoding_fixtures.py's gAMA, all-transparent and 16-bit files).
@Suite struct KerasDecodingTests {
    struct Case: Decodable, Sendable {
        let input: String
        let expected: String
        let shape: [Int]
    }
    struct ImagesManifest: Decodable { let keras_load_img: [Case] }

    static let images = root.appendingPathComponent("Tests/Fixtures/images")
    static let cases: [(folder: URL, c: Case)] = {
        let main = try! JSONDecoder().decode(ImagesManifest.self, from: Data(contentsOf: images.appendingPathComponent("manifest.json")))
        let decoding = root.appendingPathComponent("Tests/Fixtures/decoding")
        let extra = try! JSONDecoder().decode([Case].self, from: Data(contentsOf: decoding.appendingPathComponent("manifest.json")))
        return main.keras_load_img.map { (images, $0) } + extra.map { (decoding, $0) }
    }()

    @Test(arguments: cases.map(\.c.input))
    func aModelsPhotoIsTheOneLoadImgGives(_ input: String) throws {
        let (folder, c) = try #require(Self.cases.first { $0.c.input == input })
        let pipeline = InputPipeline(width: 8, height: 8, filter: .bilinear, preprocessing: .none)
        let image = try pipeline.decode(try Data(contentsOf: folder.appendingPathComponent(c.input)))
        let expected = [UInt8](try Data(contentsOf: folder.appendingPathComponent(c.expected)))
        #expect([image.height, image.width, image.channels] == c.shape, "\(input)")
        #expect(image.pixels == expected, "\(input)")
    }
}
