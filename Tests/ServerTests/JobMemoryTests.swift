import Foundation
import HTTPTypes
import Imaging
import Server
import Testing

/// A job holds its upload only until it finishes: submitting and cancelling comparisons in
/// a loop (which got around the queue limit) leaves no upload behind.
@Suite(.timeLimit(.minutes(10))) struct JobMemoryTests {
    /// A distinct PNG per call: the same size, one grey level apart.
    func upload(_ n: Int) throws -> Data {
        try encodePNG(
            Image(width: 256, height: 256, channels: 3, pixels: (0..<(256 * 256 * 3)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n) }))
    }

    func heldUploadBytes(_ client: TestHTTPClient) async throws -> Double {
        let metrics = try await client.get("/metrics").text
        let line = try #require(metrics.split(separator: "\n").first { $0.hasPrefix("convlens_job_upload_bytes ") })
        return try #require(Double(line.split(separator: " ").last ?? ""))
    }

    @Test func submitAndCancelLeavesNoUploadHeld() async throws {
        try await withServer { _, client in
            let uri = "/heatmap/compare?methods=gradcam&metrics=drop"
            var ids: [String] = []
            var sizes = 0
            // Queued (one runs, the rest wait): each holds its upload.
            for n in 0..<4 {
                let image = try upload(n)
                sizes += image.count
                let r = try await client.post(uri, image: image)
                #expect(r.status == .accepted, "\(r.text.prefix(200))")
                ids.append(try #require(try r.json()["id"] as? String))
            }
            let held = try await heldUploadBytes(client)
            #expect(held > 0 && held <= Double(sizes), "\(held) of \(sizes)")
            for id in ids { _ = try await client.execute(uri: "/jobs/\(id)", method: .delete) }
            // Submit and cancel at once, many times over.
            for n in 4..<40 {
                let r = try await client.post(uri, image: try upload(n))
                let id = try #require(try r.json()["id"] as? String, "\(r.text.prefix(200))")
                ids.append(id)
                _ = try await client.execute(uri: "/jobs/\(id)", method: .delete)
            }
            // The running one stops at its next step; then nothing is held.
            var left = try await heldUploadBytes(client)
            for _ in 0..<600 where left > 0 {
                try await Task.sleep(for: .milliseconds(100))
                left = try await heldUploadBytes(client)
            }
            #expect(left == 0)
            // Every job's status is still there.
            for id in ids { #expect(try await client.get("/jobs/\(id)").status == .ok) }
        }
    }
}
