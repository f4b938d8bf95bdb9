import Foundation
import HTTPTypes
import Imaging
import Server
import Testing
import Visualization

/// Integers from a request are range-checked before any arithmetic (one GET used to
/// kill the process), and one request's cost is bounded inside the body and pixel limits.
@Suite(.timeLimit(.minutes(5))) struct CostAndOverflowTests {
    @Test func extremeIntegersAreClientErrorsAndTheServerStaysUp() async throws {
        try await withServer { _, client in
            let max = String(Int.max)
            let min = String(Int.min)
            let huge = "99999999999999999999999"
            let gets: [(String, HTTPResponse.Status)] = [
                ("/filters/stem_activation/\(max)", .notFound),
                ("/filters/stem_activation/\(min)", .notFound),
                ("/filters/stem_activation/\(huge)", .badRequest),
                ("/filters/stem_activation?first=\(max)", .notFound),
                ("/filters/stem_activation?first=31&count=\(max)", .badRequest),
                ("/filters/stem_activation?first=30&count=4", .notFound),
                ("/filters/stem_activation/0?steps=\(max)", .badRequest),
                ("/filters/stem_activation/0?size=\(min)", .badRequest),
                ("/filters/stem_activation/0?seed=\(max)", .badRequest),
                ("/filters/stem_activation?cols=\(max)", .badRequest),
                ("/filters/stem_activation/0?wait=\(huge)", .badRequest),
            ]
            for (uri, status) in gets {
                let r = try await client.get(uri)
                #expect(r.status == status, "\(uri): \(r.text)")
                #expect(try r.error().detail.isEmpty == false)
            }
            let photo = try sample("chelsea.png")
            for uri in [
                "/activations?layer=stem_activation&channel=\(max)", "/activations?layer=stem_activation&channel=\(min)",
                "/activations?cols=\(max)", "/heatmap?top=\(max)", "/heatmap?class=\(max)", "/heatmap?class=\(min)",
                "/heatmap?percentile=\(huge)", "/api/predict?top=\(min)",
            ] {
                let r = try await client.post(uri, image: photo)
                #expect(r.status.kind == .clientError, "\(uri): \(r.status) \(r.text)")
            }
            try await client.expectHealthy()
        }
    }

    @Test func largePhotosAreOverlaidAtACappedSize() async throws {
        try await withServer(testSettings { $0.maxOverlayPixels = 250_000 }) { _, client in
            let big = try flatPNG(width: 2000, height: 1000)
            let r = try await client.post("/heatmap", image: big)
            #expect(r.status == .ok, "\(r.text)")
            #expect(r.header("X-Overlay-Size") == "707x353")
            let picture = try decodeImage(r.data)
            #expect(picture.width == 707 && picture.height == 353)
            #expect(picture.width * picture.height <= 250_000)
            // A photo within the limit is drawn at its own size, and says nothing.
            let small = try await client.post("/heatmap", image: try flatPNG(width: 400, height: 300))
            #expect(small.header("X-Overlay-Size") == nil)
            #expect(try decodeImage(small.data).width == 400)
        }
    }

    /// Issue 26's crash: a lucid grid of 256 filters at 1024×1024 (hundreds of GiB) was
    /// queued and killed the process when it allocated. It is refused before it is queued.
    @Test func aGridBeyondTheMemoryLimitIsRefusedBeforeItIsQueued() async throws {
        try await withServer { _, client in
            let r = try await client.get("/filters/top_activation?count=256&size=1024&method=lucid&steps=50&wait=0")
            if r.status == .accepted, let id = try? r.json()["id"] as? String {
                // Queued after all: stop it before its first step allocates.
                _ = try? await client.execute(uri: "/jobs/\(id)", method: .delete)
            }
            #expect(r.status == .unprocessableContent, "\(r.status) \(r.text)")
            let e = try r.error()
            #expect(e.code == "too_costly")
            #expect(
                e.detail.contains("compute.max_request_bytes") && e.detail.contains("lower count") && e.detail.contains("size (size="),
                "\(e.detail)")
            let ready = try await client.get("/readyz").json()
            #expect(ready["queued_jobs"] as? Int == 0 && ready["running_jobs"] as? Int == 0, "\(ready)")
            try await client.expectHealthy()
        }
    }

    /// The refusal's "N filters fit" is true: at a limit that holds four, eight are refused
    /// and four are drawn.
    @Test func theMemoryRefusalSaysHowManyFitAndThoseRun() async throws {
        var four = FilterRequest(layer: "stem_activation", count: 4)
        four.size = 64
        four.steps = 1
        let estimate = try bundled.session.memoryEstimate(four.canonical(for: bundled.session))
        let limit = estimate.shared + 4 * estimate.perImage
        try await withServer(testSettings { $0.maxRequestBytes = limit }) { _, client in
            let eight = try await client.get("/filters/stem_activation?count=8&size=64&steps=1&method=book&wait=0")
            #expect(eight.status == .unprocessableContent, "\(eight.text)")
            #expect(try eight.error().detail.contains("count (4 filters fit at this size)"), "\(eight.text)")
            let fits = try await client.get("/filters/stem_activation?count=4&size=64&steps=1&method=book")
            #expect(fits.status == .ok, "\(fits.status) \(fits.text.prefix(300))")
        }
    }

    @Test func dearHeatmapsAreRefusedBeforeTheyRunAndSayWhy() async throws {
        try await withServer(testSettings { $0.maxHeatmapPasses = 1 }) { _, client in
            let r = try await client.post("/heatmap?method=scorecam", image: try sample("chelsea.png"))
            #expect(r.status == .unprocessableContent)
            let e = try r.error()
            #expect(e.code == "too_costly")
            #expect(e.detail.contains("1281") && e.detail.contains("server.max_heatmap_passes"), "\(e.detail)")
            // One pass (Grad-CAM) fits the limit.
            let cheap = try await client.post("/heatmap?method=gradcam", image: try sample("chelsea.png"))
            #expect(cheap.status == .ok, "\(cheap.text)")
        }
    }
}
