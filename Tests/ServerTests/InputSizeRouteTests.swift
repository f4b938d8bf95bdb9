import Foundation
import Imaging
import KerasFormat
import Server
import Testing
import Visualization

/// The fixed-input fixture (32×32, Flatten + Dense head; tools/fixtures/make_anysize_fixtures.py).
private let fixedHead: (session: ModelSession, digest: String) = {
    let url = root.appendingPathComponent("Tests/Fixtures/visualization/anysize/fixed_head.k3.h5")
    let session = try! ModelSession(keras: try! KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
    return (session, try! session.modelDigest())
}()

/// `size=` on a model saved with a fixed input: honoured for its convolutional base,
/// a 422 naming the Flatten for a layer behind it — the library's own refusal, as JSON.
@Suite(.timeLimit(.minutes(5))) struct InputSizeRouteTests {
    @Test func aConvolutionIsDrawnAtTheSizeAskedFor() async throws {
        try await withServer(model: fixedHead) { _, client in
            let r = try await client.get("/filters/conv3/5?size=48&steps=2")
            #expect(r.status == .ok, "\(r.text)")
            let picture = try decodeImage(r.data)
            #expect(picture.width == 48 && picture.height == 48)
            let grid = try await client.get("/filters/conv3?count=2&cols=2&steps=2")
            #expect(grid.status == .ok, "\(grid.text)")
            // Without a size the model's own 32 px, not the server's filters.size (150).
            #expect(try decodeImage(grid.data).width == 2 * 32 + 5, "two 32 px cells, one 5 px margin")
        }
    }

    @Test func aLayerBehindTheFlattenIs422NamingIt() async throws {
        try await withServer(model: fixedHead) { service, client in
            var typed = FilterRequest(layer: "fc1", first: 0)
            (typed.method, typed.size) = (.lucid, 48)
            var library = ""
            do { _ = try typed.canonical(for: service.session) } catch let e as RequestError { library = e.description }
            #expect(library.contains("'flatten' (Flatten)"), "\(library)")
            for uri in ["/filters/fc1/0?size=48&method=lucid", "/filters/fc1?count=4&size=48&method=lucid"] {
                let r = try await client.get(uri)
                #expect(r.status == .unprocessableContent, "\(uri): \(r.status) \(r.text)")
                let (code, detail) = try r.error()
                #expect(code == "size_dependent_layer")
                if uri.contains("/0?") { #expect(detail == library, "the route answers the library's message") }
                #expect(detail.contains("'flatten' (Flatten)") && detail.contains("size=30...33"), "\(detail)")
            }
            try await client.expectHealthy()
        }
    }
}
