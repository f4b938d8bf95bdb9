import Foundation
import HTTPTypes
import Server
import Testing

/// A cache directory that cannot be written costs the disk copy only: the server starts,
/// answers from memory, says so in its log and /metrics; and what a client reads never
/// names the server's files, host or process.
@Suite(.timeLimit(.minutes(10))) struct StorageFailureTests {
    /// A path under a regular file: no directory can be made there, whoever the server runs as.
    func unusableCacheDirectory() throws -> String {
        let file = temporaryDirectory("unusable-cache").appendingPathComponent("a-file")
        try Data("not a directory".utf8).write(to: file)
        return file.appendingPathComponent("cache").path
    }

    @Test func anUnusableCacheDirectoryLeavesTheServerAnsweringFromMemory() async throws {
        let directory = try unusableCacheDirectory()
        try await withServer(testSettings { $0.cacheDir = directory }) { _, client in
            let uri = "/filters/stem_activation/0?size=32&steps=1"
            let first = try await client.get(uri)
            #expect(first.status == .ok, "\(first.status) \(first.text.prefix(300))")
            #expect(!first.text.contains(directory))
            let again = try await client.get(uri)
            #expect(again.status == .ok && again.header("X-Cache") == "hit")
            // The dataset index (a job whose result is stored) is answered too, and its
            // folders are named without their place on the server.
            let examples = try await client.get("/filters/stem_activation/0/examples?format=json&k=2")
            #expect(examples.status == .ok, "\(examples.status) \(examples.text.prefix(300))")
            let dataset = try #require(try examples.json()["dataset"] as? [String: Any])
            let folders = try #require(dataset["folders"] as? [String])
            #expect(folders == ["samples", "dataset"], "\(folders)")
            #expect(!examples.text.contains(root.path))
            // The directory at start, the picture and the index could not be written.
            let metrics = try await client.get("/metrics").text
            let line = try #require(metrics.split(separator: "\n").first { $0.hasPrefix("convlens_cache_disk_write_failures_total") })
            #expect((Double(line.split(separator: " ").last ?? "") ?? 0) >= 3, "\(line)")
        }
    }

    @Test func jobStatusesNameNoHostOrProcess() async throws {
        try await withServer { _, client in
            let r = try await client.get("/filters/stem_activation/1?size=32&steps=1&wait=0")
            let id = try #require(try r.json()["id"] as? String ?? r.header("X-Job"), "\(r.status) \(r.text.prefix(200))")
            var status = try await client.get("/jobs/\(id)")
            for _ in 0..<600 where (try status.json()["state"] as? String) != "done" {
                try await Task.sleep(for: .milliseconds(100))
                status = try await client.get("/jobs/\(id)")
            }
            #expect(try status.json()["state"] as? String == "done", "\(status.text)")
            #expect(try status.json()["worker"] == nil, "\(status.text)")
            let pid = ProcessInfo.processInfo.processIdentifier
            #expect(!status.text.contains(ProcessInfo.processInfo.hostName) && !status.text.contains(":\(pid)"), "\(status.text)")
        }
    }

    @Test func internalErrorsTellClientsNothingOfTheServer() {
        let path = "/srv/convlens/private/cache/ab/ab12.png"
        let api = APIError.from(CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]))
        #expect(api.status == .internalServerError)
        #expect(!api.detail.contains("/srv") && api.detail.contains("X-Request-Id"), "\(api.detail)")
    }
}
