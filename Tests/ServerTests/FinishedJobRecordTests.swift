import Foundation
import HTTPTypes
import Server
import Testing

/// Finished jobs' records are bounded in bytes, and a done job's status outlives the
/// cancelled ones: 1,001 submit-and-cancel cycles used to push every finished job out of
/// `GET /jobs/{id}` (404) while its result was still stored.
@Suite(.timeLimit(.minutes(10))) struct FinishedJobRecordTests {
    func metric(_ name: String, _ client: TestHTTPClient) async throws -> Double {
        let text = try await client.get("/metrics").text
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(name + " ") }, "no \(name)")
        return try #require(Double(line.split(separator: " ").last ?? ""))
    }

    func jobID(_ r: Reply) throws -> String {
        try #require(try r.json()["id"] as? String, "\(r.status) \(r.text.prefix(200))")
    }

    @Test func aDoneJobsStatusOutlivesAThousandCancelledJobs() async throws {
        let bound = 128 << 10
        try await withServer(testSettings { $0.finishedJobBytes = bound }) { _, client in
            // A job that finishes, its result stored.
            let done = try await client.get("/filters/stem_activation/0?size=32&steps=1&wait=0")
            let doneID = try jobID(done)
            var state = ""
            for _ in 0..<600 where state != "done" {
                try await Task.sleep(for: .milliseconds(50))
                state = try await client.get("/jobs/\(doneID)").json()["state"] as? String ?? ""
            }
            #expect(state == "done")
            // One long job holds the worker, so each job after it waits and is cancelled at once.
            let blocker = try jobID(await client.get("/filters/stem_activation/1?size=224&steps=1000&method=lucid&wait=0"))
            var cancelled: [String] = []
            for n in 0..<1001 {
                let r = try await client.get("/filters/stem_activation/\(2 + n % 30)?size=32&steps=1&seed=\(n)&wait=0")
                let id = try jobID(r)
                let c = try await client.execute(uri: "/jobs/\(id)", method: .delete)
                #expect(c.status == .ok, "\(c.text.prefix(200))")
                #expect(try c.json()["state"] as? String == "cancelled", "\(c.text.prefix(200))")
                cancelled.append(id)
            }
            _ = try await client.execute(uri: "/jobs/\(blocker)", method: .delete)
            // The done job is still answered, and so is its result.
            let status = try await client.get("/jobs/\(doneID)")
            #expect(status.status == .ok, "\(status.status) \(status.text.prefix(200))")
            #expect(try status.json()["state"] as? String == "done")
            let result = try #require(try status.json()["result"] as? String)
            #expect(try await client.get(result).status == .ok)
            // The records stay within their bound: the newest cancelled ones are kept, the oldest forgotten.
            let held = try await metric("convlens_finished_job_bytes", client)
            #expect(held > 0 && held <= Double(bound), "\(held)")
            let newest = try await client.get("/jobs/\(cancelled.last!)")
            #expect(newest.status == .ok)
            #expect(try newest.json()["state"] as? String == "cancelled")
            let oldest = try await client.get("/jobs/\(cancelled[0])")
            #expect(oldest.status == .notFound, "\(oldest.status)")
            #expect(try oldest.error().code == "unknown_job")
            // A finished job's event stream is its final status.
            let events = try await client.get("/jobs/\(doneID)/events")
            #expect(events.status == .ok && events.text.contains("event: done"), "\(events.text.prefix(200))")
        }
    }
}
