import Foundation
import HTTPTypes
import Server
import Testing
import Visualization

/// A comparison's document is bounded before it is queued: its methods × overlay_size²
/// (one repeated comparison with large overlays used to store a 157 MB document, in the
/// memory cache and on disk).
@Suite(.timeLimit(.minutes(10))) struct CompareDocumentSizeTests {
    @Test func largeOverlaysBeyondTheResultLimitAreRefusedBeforeQueueing() async throws {
        try await withServer { _, client in
            // The default methods (twelve) at the largest overlay: up to 193 MiB of document.
            let r = try await client.post("/heatmap/compare?overlay_size=2048", image: try sample("chelsea.png"))
            #expect(r.status == .unprocessableContent, "\(r.status) \(r.text.prefix(300))")
            let (code, detail) = try r.error()
            #expect(code == "too_costly")
            #expect(detail.contains("193 MiB") && detail.contains("64 MiB") && detail.contains("cache.max_entry_bytes"), "\(detail)")
            #expect(detail.contains("overlay_size=1181 fits 12 methods") && detail.contains("3 fit at overlay_size=2048"), "\(detail)")
            // Nothing was queued.
            let metrics = try await client.get("/metrics").text
            let depth = try #require(metrics.split(separator: "\n").first { $0.hasPrefix("convlens_queue_depth ") })
            #expect(Double(depth.split(separator: " ").last ?? "") == 0, "\(depth)")
            // What it says fits is accepted.
            let fits = try await client.post(
                "/heatmap/compare?overlay_size=2048&methods=gradcam,layercam,saliency", image: try sample("chelsea.png"))
            #expect(fits.status == .accepted, "\(fits.status) \(fits.text.prefix(300))")
        }
    }

    @Test func aDocumentMadeIsWithinItsBound() async throws {
        try await withServer(testSettings { $0.maxEntryBytes = 1 << 20 }) { _, client in
            let image = try flatPNG(width: 512, height: 512)
            let refused = try await client.post("/heatmap/compare?methods=gradcam,saliency&metrics=drop&overlay_size=512", image: image)
            #expect(refused.status == .unprocessableContent, "\(refused.status) \(refused.text.prefix(300))")
            #expect(try refused.error().detail.contains("lower overlay_size (overlay_size="), "\(refused.text)")
            let uri = "/heatmap/compare?methods=gradcam,saliency&metrics=drop&overlay_size=352"
            let r = try await client.post(uri, image: image)
            #expect(r.status == .accepted, "\(r.status) \(r.text.prefix(300))")
            let result = try #require(try r.json()["result"] as? String)
            let location = try #require(r.headers[.location])
            var state = ""
            for _ in 0..<3000 where !["done", "failed", "cancelled"].contains(state) {
                try await Task.sleep(for: .milliseconds(100))
                state = try await client.get(location).json()["state"] as? String ?? ""
            }
            #expect(state == "done")
            let document = try await client.get(result)
            #expect(document.status == .ok)
            var request = CompareRequest(methods: [.gradcam, .saliency])
            request.overlaySize = 352
            #expect(document.data.count <= request.documentBytesBound, "\(document.data.count) > \(request.documentBytesBound)")
            #expect(request.documentBytesBound <= 1 << 20)
        }
    }
}
