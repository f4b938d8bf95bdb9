import Foundation
import HTTPTypes
import Imaging
import Server
import Testing
import Visualization

/// `GET /filters/{layer}/{index}/examples` on a real server with the bundled model: the
/// answers are the index `DatasetIndex` computes directly, the index is a stored job
/// result keyed by the folder's content, and bad parameters are errors, not crashes.
@Suite(.serialized, .timeLimit(.minutes(15))) struct DatasetExamplesRouteTests {
    static let samples = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]

    /// A folder `photos` holding copies of `names` from public/samples.
    func folder(_ names: [String]) throws -> URL {
        let dir = temporaryDirectory("dataset").appendingPathComponent("photos")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in names { try sample(name).write(to: dir.appendingPathComponent(name)) }
        return dir
    }

    func settings(_ dir: URL, cache: URL? = nil) -> ServerSettings {
        testSettings {
            $0.datasetDirs = [dir.path]
            if let cache { $0.cacheDir = cache.path }
        }
    }

    /// The JSON answer over the four samples equals the index built directly from the
    /// same files (same order, values within 1e-5, positions, boxes); the PNG strip decodes.
    @Test func examplesAreWhatTheIndexComputesDirectly() async throws {
        let dir = try folder(Self.samples)
        let session = bundled.session
        let gallery = session.galleryLayers.map { $0.target.name }
        let layers = [gallery[0], gallery[gallery.count / 2], gallery[gallery.count - 1]]
        var built = DatasetIndex(k: 9)
        for name in Self.samples {
            try session.addToDatasetIndex(
                &built, name: "photos/\(name)", imageData: Data(contentsOf: dir.appendingPathComponent(name)), layers: layers)
        }
        let direct = built
        let pipeline = try session.imagePipeline()
        try await withServer(settings(dir)) { _, client in
            for layer in layers {
                let channels = direct.layers[layer]!.count
                for channel in [0, channels / 3, channels - 1] {
                    let r = try await client.get("/filters/\(layer)/\(channel)/examples?format=json&wait=300")
                    #expect(r.status == .ok, "\(r.text.prefix(300))")
                    #expect(r.header("X-Dataset-Images") == "4")
                    let body = try r.json()
                    let got = try #require(body["examples"] as? [[String: Any]])
                    let want = direct.layers[layer]![channel]
                    #expect(got.count == want.count && want.count == 4, "\(layer) \(channel)")
                    for (g, w) in zip(got, want) {
                        let image = try #require(g["image"] as? [String: Any])
                        #expect(image["name"] as? String == w.image)
                        #expect(image["id"] as? Int == Self.samples.firstIndex(of: String(w.image.dropFirst(7))))
                        #expect(abs((g["value"] as? Double ?? .nan) - Double(w.value)) <= 1e-5, "\(layer) \(channel) \(w.image)")
                        let position = try #require(g["position"] as? [String: Int])
                        #expect(position == ["row": w.row, "column": w.column])
                        let box = try #require(g["box"] as? [String: Int])
                        #expect([box["top"], box["left"], box["bottom"], box["right"]] == w.box.map { $0 })
                        // The same box in the photo's own pixels.
                        let photo = try decodeImage(sample(String(w.image.dropFirst(7))))
                        let size = (width: photo.width, height: photo.height)
                        #expect(image["width"] as? Int == size.width && image["height"] as? Int == size.height)
                        let imageBox = try #require(g["image_box"] as? [String: Int])
                        let expected = pipeline.imageBox(w.box, imageWidth: size.width, imageHeight: size.height)
                        #expect([imageBox["top"], imageBox["left"], imageBox["bottom"], imageBox["right"]] == expected.map { $0 })
                        #expect(expected[2] < size.height && expected[3] < size.width && expected[0] >= 0 && expected[1] >= 0)
                    }
                }
            }
            // k= keeps the best k, in order.
            let two = try await client.get("/filters/\(layers[0])/0/examples?format=json&k=2").json()
            let names = (two["examples"] as? [[String: Any]])?.compactMap { ($0["image"] as? [String: Any])?["name"] as? String }
            #expect(names == direct.layers[layers[0]]![0].prefix(2).map(\.image))

            let png = try await client.get("/filters/\(layers[1])/3/examples?patch=64")
            #expect(png.status == .ok)
            #expect(png.headers[.contentType] == "image/png")
            let strip = try decodeImage(png.data)
            // One row of four 64-pixel patches with margins and labels.
            #expect(strip.width >= 4 * 64 && strip.width < 4 * 64 + 64 && strip.height >= 64 && strip.height < 2 * 64)
            let again = try await client.get("/filters/\(layers[1])/3/examples?patch=64")
            #expect(again.header("X-Cache") == "hit" && again.data == png.data)
        }
    }

    /// Parameters are checked before any index is looked for: wrong ones are JSON errors.
    @Test func badParametersAreErrors() async throws {
        let dir = try folder(["chelsea.png"])
        let session = bundled.session
        let first = session.galleryLayers[0].target
        let channels = first.outputShape.last!
        // A spatial layer that is not a gallery layer: the convolution before its activation.
        let unindexed = session.galleryLayers[0].convolution.name
        try await withServer(settings(dir)) { _, client in
            for (uri, status, code) in [
                ("/filters/\(first.name)/0/examples?k=0", 400, "bad_request"),
                ("/filters/\(first.name)/0/examples?k=10", 400, "bad_request"),
                ("/filters/\(first.name)/0/examples?k=nine", 400, "bad_request"),
                ("/filters/\(first.name)/0/examples?k=99999999999999999999999", 400, "bad_request"),
                ("/filters/\(first.name)/0/examples?patch=8", 400, "bad_request"),
                ("/filters/\(first.name)/0/examples?format=npy", 400, "bad_request"),
                ("/filters/\(first.name)/0/examples?wait=-1", 400, "bad_request"),
                ("/filters/\(first.name)/x/examples", 400, "bad_request"),
                ("/filters/\(first.name)/-1/examples", 404, "out_of_range"),
                ("/filters/\(first.name)/\(channels)/examples", 404, "out_of_range"),
                ("/filters/\(first.name)/99999999999999999999/examples", 400, "bad_request"),
                ("/filters/no_such_layer/0/examples", 404, "unknown_layer"),
                ("/filters/\(unindexed)/0/examples", 422, "unsupported"),
                ("/filters/\(session.keras.layers.last!.name)/0/examples", 422, "not_spatial"),
            ] {
                let r = try await client.get(uri)
                #expect(r.status.code == status, "\(uri): \(r.status) \(r.text.prefix(200))")
                #expect(try r.error().code == code, "\(uri)")
            }
            try await client.expectHealthy()
        }
    }

    /// A file added to the folder gives a new content address and a new index (built by
    /// a job: 202 at wait=0); after a restart the stored index is read back from the disk
    /// cache without a job (200 at wait=0).
    @Test func aChangedFolderIsReindexedAndTheIndexSurvivesARestart() async throws {
        let dir = try folder(["chelsea.png", "coffee.png"])
        let cache = temporaryDirectory("dataset-cache")
        let layer = bundled.session.galleryLayers[0].target.name
        let uri = "/filters/\(layer)/1/examples?format=json"
        let (before, after) = try await withServer(settings(dir, cache: cache)) { _, client in
            let first = try await client.get(uri + "&wait=0")
            #expect(first.status == .accepted, "\(first.text.prefix(200))")
            #expect((try first.json()["kind"] as? String) == "dataset_index")
            let built = try await client.get(uri + "&wait=300")
            #expect(built.status == .ok)
            #expect(built.header("X-Dataset-Images") == "2")
            try sample("rocket.jpg").write(to: dir.appendingPathComponent("rocket.jpg"))
            let changed = try await client.get(uri + "&wait=0")
            #expect(changed.status == .accepted, "a new file must start a new index: \(changed.status)")
            let rebuilt = try await client.get(uri + "&wait=300")
            #expect(rebuilt.status == .ok)
            #expect(rebuilt.header("X-Dataset-Images") == "3")
            let names = try (rebuilt.json()["examples"] as? [[String: Any]])?.compactMap {
                ($0["image"] as? [String: Any])?["name"] as? String
            }
            #expect(Set(names ?? []) == ["photos/chelsea.png", "photos/coffee.png", "photos/rocket.jpg"])
            return (try #require(built.header("X-Dataset-Index")), try #require(rebuilt.header("X-Dataset-Index")))
        }
        #expect(before != after)
        try await withServer(settings(dir, cache: cache)) { service, client in
            let r = try await client.get(uri + "&wait=0")
            #expect(r.status == .ok, "the stored index must be read, not rebuilt: \(r.status) \(r.text.prefix(200))")
            #expect(r.header("X-Dataset-Index") == after)
            #expect(service.cache.stats.diskHits >= 1)
            let counts = try await service.jobs.counts()
            #expect(counts.queued == 0 && counts.running == 0, "no job may run to read a stored index")
        }
    }
}
