import Foundation
import HTTPTypes
import Imaging
import NIOCore
import Server
import Testing

/// Every kind of bad request gets its JSON error with the right status, and the
/// server keeps serving afterwards.
@Suite(.timeLimit(.minutes(5))) struct BadInputTests {
    @Test func bodyTooLargeIs413() async throws {
        try await withServer(testSettings { $0.maxBodyBytes = 50_000 }) { _, client in
            let big = try sample("chelsea.png")  // 200+ KB
            #expect(big.count > 50_000)
            let r = try await client.post("/heatmap", image: big)
            #expect(r.status == .contentTooLarge)
            #expect(try r.error().code == "body_too_large")
            #expect(try r.error().detail.contains("50000"))
            let form = try await client.postForm("/api/predict", image: big)
            #expect(form.status == .contentTooLarge)
            try await client.expectHealthy()
        }
    }

    @Test func tooManyPixelsIs413BeforeDecoding() async throws {
        try await withServer(testSettings { $0.maxImagePixels = 1_000_000 }) { _, client in
            let huge = try flatPNG(width: 2000, height: 1000)  // small file, 2 M pixels
            #expect(huge.count < 100_000)
            for path in ["/heatmap", "/activations", "/api/predict"] {
                let r = try await client.post(path, image: huge)
                #expect(r.status == .contentTooLarge, "\(path)")
                let e = try r.error()
                #expect(e.code == "image_too_large")
                #expect(e.detail.contains("2000x1000"))
            }
            try await client.expectHealthy()
        }
    }

    @Test func unsupportedMediaTypesAre415() async throws {
        try await withServer { _, client in
            let text = try await client.execute(
                uri: "/heatmap", method: .post, headers: [.contentType: "text/plain"],
                body: ByteBuffer(string: "hello"))
            #expect(text.status == .unsupportedMediaType)
            #expect(try text.error().detail.contains("image/png"))
            let none = try await client.execute(uri: "/api/predict", method: .post, body: ByteBuffer(string: "x"))
            #expect(none.status == .unsupportedMediaType)
            // A GIF sent as image/png: the bytes decide, not the header.
            let gif = try await client.post("/heatmap", image: try fixtureImage("bad_gif.png"))
            #expect(gif.status == .unsupportedMediaType)
            let notImage = try await client.post("/activations", image: try fixtureImage("bad_not_an_image.png"))
            #expect(notImage.status == .unsupportedMediaType)
            try await client.expectHealthy()
        }
    }

    @Test func corruptAndTruncatedImagesAre400() async throws {
        try await withServer { _, client in
            for name in [
                "bad_truncated.png", "bad_crc.png", "bad_truncated_half.jpg", "bad_header_only.jpg",
                "bad_png_magic_garbage.png", "bad_garbled_scan.jpg",
            ] {
                let r = try await client.post("/heatmap", image: try fixtureImage(name), contentType: "application/octet-stream")
                #expect(r.status == .badRequest, "\(name): \(r.status) \(r.text)")
                #expect(try r.error().code == "corrupt_image", "\(name)")
            }
            let empty = try await client.post("/api/predict", image: Data())
            #expect(empty.status == .badRequest)
            let noField = try await client.postForm("/heatmap", image: try sample("chelsea.png"), field: "photo")
            #expect(noField.status == .badRequest)
            #expect(try noField.error().detail.contains("'image'"))
            try await client.expectHealthy()
        }
    }

    @Test func unknownLayersAndIndicesAre404() async throws {
        try await withServer { _, client in
            let layer = try await client.get("/filters/block9_conv/0")
            #expect(layer.status == .notFound)
            let e = try layer.error()
            #expect(e.code == "unknown_layer")
            #expect(e.detail.contains("stem_conv") && e.detail.contains("top_conv"), "the detail lists the valid layers")
            let heat = try await client.post("/heatmap?layer=nope", image: try sample("chelsea.png"))
            #expect(heat.status == .notFound)
            let index = try await client.get("/filters/stem_conv/32")
            #expect(index.status == .notFound)
            #expect(try index.error().detail.contains("0...31"))
            let negative = try await client.get("/filters/stem_conv/-1")
            #expect(negative.status == .notFound)
            let channel = try await client.post("/activations?layer=stem_conv&channel=99", image: try sample("chelsea.png"))
            #expect(channel.status == .notFound)
            let route = try await client.get("/no/such/thing")
            #expect(route.status == .notFound)
            #expect(try route.error().code == "not_found")
            let job = try await client.get("/jobs/0123456789abcdef")
            #expect(job.status == .notFound)
            #expect(try job.error().code == "unknown_job")
            try await client.expectHealthy()
        }
    }

    @Test func layersWithoutASpatialMapAre422() async throws {
        try await withServer { _, client in
            let heat = try await client.post("/heatmap?layer=avg_pool", image: try sample("chelsea.png"))
            #expect(heat.status == .unprocessableContent)
            #expect(try heat.error().code == "not_spatial")
            let act = try await client.post("/activations?layer=predictions", image: try sample("chelsea.png"))
            #expect(act.status == .unprocessableContent)
            let filter = try await client.get("/filters/avg_pool/0")
            #expect(filter.status == .unprocessableContent)
            try await client.expectHealthy()
        }
    }

    @Test func badQueryValuesAre400WithTheAllowedRange() async throws {
        try await withServer { _, client in
            let cases: [(String, String)] = [
                ("/heatmap?alpha=abc", "0.0...1.0"),
                ("/heatmap?alpha=1.5", "0.0...1.0"),
                ("/heatmap?method=magic", "gradcam"),
                ("/heatmap?colormap=rainbow", "viridis"),
                ("/heatmap?class=1000", "0...999"),
                ("/heatmap?class=not-a-label", "not-a-label"),
                ("/heatmap?post_softmax=maybe", "true or false"),
                ("/heatmap?post_activation=maybe", "true or false"),
                ("/heatmap?eigen_smooth=maybe", "true or false"),
                ("/heatmap?aug_smooth=2", "true or false"),
                ("/heatmap?numerics=winograd", "exact, fast"),
                ("/heatmap?post_activation=true&post_softmax=false", "older name of post_activation"),
                ("/activations?cols=0", "1...256"),
            ]
            for (uri, allowed) in cases {
                let r = try await client.post(uri, image: try sample("chelsea.png"))
                #expect(r.status == .badRequest, "\(uri): \(r.status)")
                #expect(try r.error().detail.contains(allowed), "\(uri): \(r.text)")
            }
            for (uri, allowed) in [
                ("/filters/stem_conv/0?steps=1000000000", "1...1000"), ("/filters/stem_conv/0?size=5", "8...1024"),
                ("/filters/stem_conv/x", "not an integer"), ("/filters/stem_conv?count=0", "1...256"),
                ("/filters/stem_conv/0?method=dream", "book, lucid"), ("/filters/stem_conv/0?wait=-1", "0.0...300.0"),
            ] {
                let r = try await client.get(uri)
                #expect(r.status == .badRequest, "\(uri): \(r.status)")
                #expect(try r.error().detail.contains(allowed), "\(uri): \(r.text)")
            }
            try await client.expectHealthy()
        }
    }
}
