import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

// Scale-out on PostgreSQL, as a user runs it: real `convlens serve` replicas and
// `convlens worker` processes sharing a private PostgreSQL 15 cluster on a free port.
// Nothing is a mock: jobs cross processes only through the database.

private struct Reply {
    var status: Int
    var data: Data
    var headers: [AnyHashable: Any]
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:] }
    func header(_ name: String) -> String? { headers.first { ($0.key as? String)?.lowercased() == name.lowercased() }?.value as? String }
}

private func request(_ url: String, method: String = "GET", body: Data? = nil, contentType: String? = nil) async throws -> Reply {
    var r = URLRequest(url: URL(string: url)!)
    r.httpMethod = method
    r.httpBody = body
    r.timeoutInterval = 120
    if let contentType { r.setValue(contentType, forHTTPHeaderField: "Content-Type") }
    let (data, response) = try await URLSession.shared.data(for: r)
    let http = response as! HTTPURLResponse
    return Reply(status: http.statusCode, data: data, headers: http.allHeaderFields)
}

/// A database of its own on the shared test cluster, and the URL processes get.
private func freshDatabase(_ name: String) throws -> String {
    let cluster = PostgresCluster.shared
    _ = try cluster.psql("CREATE DATABASE \(name)", database: "postgres")
    return "postgres://convlens@127.0.0.1:\(cluster.port)/\(name)"
}

/// Settings every process of a test cluster shares: short leases, no disk cache, quick shutdown.
private func clusterEnvironment(lease: Int = 30) -> [String: String] {
    [
        "CONVLENS_CACHE_DIR": "", "CONVLENS_JOBS_LEASE_SECONDS": "\(lease)", "CONVLENS_JOBS_SHUTDOWN_GRACE_SECONDS": "1",
        "CONVLENS_COMPUTE_OMP_THREADS": "1",
    ]
}

private func replica(_ url: String, workers: Int, lease: Int = 30) async throws -> (ServerProcess, String) {
    let p = try ServerProcess(
        ["--port", "0", "--database-url", url],
        environment: clusterEnvironment(lease: lease).merging(["CONVLENS_JOBS_WORKERS": "\(workers)"]) { $1 })
    let port = try await p.waitForPort()
    let base = "http://127.0.0.1:\(port)"
    // Ready once PostgreSQL answered and the schema is in place.
    for _ in 0..<100 where try await request(base + "/readyz").status != 200 { try await Task.sleep(for: .milliseconds(200)) }
    return (p, base)
}

private func worker(_ url: String, lease: Int = 30) async throws -> ServerProcess {
    let p = try ServerProcess(["--database-url", url], command: "worker", environment: clusterEnvironment(lease: lease))
    for _ in 0..<300 where !p.output.contains("worker: model") {
        guard p.process.isRunning else { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    #expect(p.output.contains("worker: model"), "the worker started:\n\(p.output.suffix(2000))")
    return p
}

/// Polls `/jobs/{id}` on `base` until the job finishes; its final status.
private func finished(_ base: String, _ location: String, timeout: Double = 300) async throws -> [String: Any] {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        let s = try await request(base + location).json
        if let state = s["state"] as? String, ["done", "failed", "cancelled"].contains(state) { return s }
        try await Task.sleep(for: .milliseconds(200))
    }
    throw CancellationError()
}

private func stopAll(_ ps: [ServerProcess]) { for p in ps where p.process.isRunning { kill(p.process.processIdentifier, SIGKILL) } }

@Suite(.serialized, .timeLimit(.minutes(15))) struct ClusterTests {
    /// The dataset index reads this replica's folders, so it runs in the replica (an
    /// API-only one too) and is no row in PostgreSQL; its job is followed like any other.
    @Test func anAPIOnlyReplicaIndexesItsOwnFoldersForDatasetExamples() async throws {
        let url = try freshDatabase("examples")
        let (a, baseA) = try await replica(url, workers: 0)
        defer { stopAll([a]) }
        let first = try await request(baseA + "/filters/stem_activation/3/examples?format=json&k=4&wait=0")
        #expect(first.status == 202, "\(first.status) \(String(decoding: first.data, as: UTF8.self))")
        let location = try #require(first.header("Location"))
        let status = try await finished(baseA, location, timeout: 300)
        #expect(status["state"] as? String == "done", "\(status)")
        #expect(status["kind"] as? String == "dataset_index")
        let examples = try await request(baseA + "/filters/stem_activation/3/examples?format=json&k=4").json
        let list = try #require(examples["examples"] as? [[String: Any]], "\(examples)")
        #expect(list.count == 4)
        let values = list.compactMap { $0["value"] as? Double }
        #expect(values.count == 4 && values == values.sorted(by: >), "best first: \(values)")
        let strip = try await request(baseA + "/filters/stem_activation/3/examples?k=4")
        #expect(strip.status == 200 && strip.data.starts(with: [0x89, 0x50, 0x4E, 0x47]))
    }

    @Test func twoReplicasAndAWorkerShareJobsAndEachIsComputedOnce() async throws {
        let url = try freshDatabase("share")
        let (a, baseA) = try await replica(url, workers: 1)
        let (b, baseB) = try await replica(url, workers: 1)
        let w = try await worker(url)
        defer { stopAll([a, b, w]) }

        // The same request on A and B at once is one job.
        async let onA = request(baseA + "/filters/stem_activation/31?steps=3&wait=0")
        async let onB = request(baseB + "/filters/stem_activation/31?steps=3&wait=0")
        let (ra, rb) = try await (onA, onB)
        let job = ra.json["job"] as? String
        #expect(job != nil && job == rb.json["job"] as? String, "one job for one request")
        #expect(ra.header("Location") != rb.header("Location"), "each request has its own id")

        // 24 distinct jobs, half submitted to each replica.
        var locations: [String] = []
        for i in 0..<24 {
            let r = try await request((i % 2 == 0 ? baseA : baseB) + "/filters/stem_activation/\(i)?steps=2&wait=0")
            #expect(r.status == 202 || r.status == 200, "\(r.status) \(String(decoding: r.data, as: UTF8.self))")
            if let l = r.header("Location") { locations.append(l) }
        }
        #expect(locations.count == 24)
        var workers: Set<String> = []
        for l in locations {
            let s = try await finished(baseB, l)
            #expect(s["state"] as? String == "done", "\(s)")
            #expect(s["attempt"] as? Int == 1)
            if let w = s["worker"] as? String { workers.insert(String(w.split(separator: ":").dropLast().joined(separator: ":"))) }
        }
        #expect(workers.count >= 2, "the work was spread over processes: \(workers)")
        // Computed exactly once each: one row per key, one attempt, one stored result.
        let cluster = PostgresCluster.shared
        #expect(try cluster.psql("SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 1", database: "share") == "25")
        #expect(try cluster.psql("SELECT count(*) FROM results", database: "share") == "25")
        let doneLines = [a, b, w].map { $0.output.components(separatedBy: " done").count - 1 }.reduce(0, +)
        #expect(doneLines == 25, "each job ran once across the processes: \(doneLines)")
        // Both replicas serve every result, byte for byte the same.
        for i in [0, 7, 23] {
            let fromA = try await request(baseA + "/filters/stem_activation/\(i)?steps=2")
            let fromB = try await request(baseB + "/filters/stem_activation/\(i)?steps=2")
            #expect(fromA.status == 200 && fromB.status == 200)
            #expect(fromA.data == fromB.data && fromA.data.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        }
    }

    @Test func progressAndCancelCrossProcessesAndAKilledWorkersJobRunsElsewhere() async throws {
        let url = try freshDatabase("faults")
        // API-only replicas: every job runs in a worker process.
        let (a, baseA) = try await replica(url, workers: 0, lease: 3)
        let (b, baseB) = try await replica(url, workers: 0, lease: 3)
        let w1 = try await worker(url, lease: 3)
        defer { stopAll([a, b, w1]) }

        // Events on A follow a job that the worker runs; a cancel on B stops it at its next step.
        let long = try await request(baseA + "/filters/stem_activation/5?steps=1000&wait=0")
        let location = try #require(long.header("Location"))
        let events = Process()
        events.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        events.arguments = ["-sN", "--max-time", "60", baseA + location + "/events"]
        let pipe = Pipe()
        events.standardOutput = pipe
        try events.run()
        var running: [String: Any] = [:]
        for _ in 0..<300 {
            running = try await request(baseB + location).json
            if (running["step"] as? Int ?? 0) >= 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(running["state"] as? String == "running")
        #expect((running["worker"] as? String)?.contains(":\(w1.process.processIdentifier):") == true, "\(running)")
        let cancel = try await request(baseB + location, method: "DELETE")
        #expect(cancel.status == 200)
        let cancelled = try await finished(baseA, location, timeout: 30)
        #expect(cancelled["state"] as? String == "cancelled", "\(cancelled)")
        events.waitUntilExit()
        let stream = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(stream.contains("event: progress"), "A streamed the worker's progress")
        #expect(stream.contains("event: cancelled"), "…and the cancel made on B:\n\(stream.suffix(500))")

        // kill -9 of the worker holding a job: its lease expires and a second worker finishes it.
        let job = try await request(baseA + "/filters/stem_activation/6?steps=60&wait=0")
        let jobLocation = try #require(job.header("Location"))
        // Kill as soon as it runs (a `for … where` would keep polling, unthrottled, after that:
        // long enough for a fast job to finish first).
        for _ in 0..<300 {
            if (try await request(baseA + jobLocation).json["state"] as? String) == "running" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(w1.process.processIdentifier, SIGKILL)
        let w2 = try await worker(url, lease: 3)
        defer { stopAll([w2]) }
        let done = try await finished(baseB, jobLocation, timeout: 300)
        #expect(done["state"] as? String == "done", "\(done)")
        #expect(done["attempt"] as? Int == 2, "the second run is attempt 2: \(done)")
        #expect((done["worker"] as? String)?.contains(":\(w2.process.processIdentifier):") == true)
        let fromA = try await request(baseA + "/filters/stem_activation/6?steps=60")
        let fromB = try await request(baseB + "/filters/stem_activation/6?steps=60")
        #expect(fromA.status == 200 && fromA.data == fromB.data)
    }

    @Test func aWorkerStoppedBySIGTERMHandsItsJobBackAndExitsCleanly() async throws {
        let url = try freshDatabase("release")
        let (a, baseA) = try await replica(url, workers: 0)
        let w1 = try await worker(url)  // grace 1 s (clusterEnvironment)
        defer { stopAll([a, w1]) }
        let job = try await request(baseA + "/filters/stem_activation/7?steps=1000&wait=0")
        let location = try #require(job.header("Location"))
        for _ in 0..<300 where ((try await request(baseA + location).json["step"] as? Int) ?? 0) < 2 {
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(w1.process.processIdentifier, SIGTERM)
        #expect(try await w1.waitForExit(timeout: 60) == 0, "\(w1.output.suffix(2000))")
        #expect(w1.output.contains("released"), "the unfinished job was handed back:\n\(w1.output.suffix(1000))")
        let back = try await request(baseA + location).json
        #expect(back["state"] as? String == "queued", "\(back)")
        #expect(back["worker"] == nil || back["worker"] is NSNull)
        // Another worker takes it; the release did not count as a lost attempt.
        let w2 = try await worker(url)
        defer { stopAll([w2]) }
        for _ in 0..<300 where (try await request(baseA + location).json["state"] as? String) != "running" {
            try await Task.sleep(for: .milliseconds(100))
        }
        let again = try await request(baseA + location).json
        #expect(again["attempt"] as? Int == 1, "\(again)")
        #expect((again["worker"] as? String)?.contains(":\(w2.process.processIdentifier):") == true)
        _ = try await request(baseA + location, method: "DELETE")
    }

    @Test func aDatabaseRestartLosesNothingAndPicturesKeepWorking() async throws {
        let cluster = try PostgresCluster()
        _ = try cluster.psql("SELECT 1")
        let url = "postgres://convlens@127.0.0.1:\(cluster.port)/convlens"
        let (a, baseA) = try await replica(url, workers: 1, lease: 5)
        defer { stopAll([a]) }
        let queued = try await request(baseA + "/filters/stem_activation/9?steps=30&wait=0")
        let location = try #require(queued.header("Location"))

        try cluster.stop()
        var readiness = 200
        for _ in 0..<50 where readiness == 200 {
            readiness = try await request(baseA + "/readyz").status
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(readiness == 503, "readyz says the job store is down")
        let refused = try await request(baseA + "/filters/stem_activation/10?steps=2&wait=0")
        #expect(refused.status == 503)
        #expect((refused.json["error"] as? String) == "jobs_unavailable")
        let photo = try Data(contentsOf: root.appendingPathComponent("public/samples/chelsea.png"))
        let heatmap = try await request(baseA + "/heatmap", method: "POST", body: photo, contentType: "image/png")
        #expect(heatmap.status == 200, "a heatmap needs no database")

        try cluster.start()
        for _ in 0..<100 where try await request(baseA + "/readyz").status != 200 { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try await request(baseA + "/readyz").status == 200, "reconnected")
        let done = try await finished(baseA, location, timeout: 300)
        #expect(done["state"] as? String == "done", "the job accepted before the outage finished: \(done)")
    }
}

extension ClusterTests {
    /// A comparison of methods submitted to an API-only replica is computed by a worker
    /// process, which reads the upload from the results table (nothing else crosses); the
    /// replica then serves the document, with the scores its own `/heatmap` gives.
    @Test func aWorkerProcessComputesAComparisonFromTheStoredUpload() async throws {
        let url = try freshDatabase("compare")
        let (a, baseA) = try await replica(url, workers: 0)
        let w = try await worker(url)
        defer { stopAll([a, w]) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let image = try Data(contentsOf: root.appendingPathComponent("public/samples/chelsea.png"))
        let r = try await request(
            baseA + "/heatmap/compare?methods=gradcam,saliency&metrics=deletion,drop", method: "POST", body: image,
            contentType: "image/png")
        #expect(r.status == 202, "\(String(decoding: r.data, as: UTF8.self))")
        let location = try #require(r.header("Location"))
        let job = r.json
        #expect(job["kind"] as? String == "compare" && job["steps"] as? Int == 6, "\(job)")
        let done = try await finished(baseA, location)
        #expect(done["state"] as? String == "done", "\(done)")
        #expect((done["worker"] as? String)?.contains(":\(w.process.processIdentifier):") == true, "the worker ran it: \(done)")
        #expect(done["step"] as? Int == 6)
        let result = try #require(done["result"] as? String)
        let document = try await request(baseA + result)
        #expect(document.status == 200)
        let methods = try #require(document.json["methods"] as? [[String: Any]])
        #expect(methods.count == 2)
        for m in methods {
            let name = try #require(m["method"] as? String)
            let heatmap = try await request(
                baseA + "/heatmap?method=\(name)&metrics=deletion,drop&format=json", method: "POST", body: image, contentType: "image/png")
            let expected = try #require(heatmap.json["metrics"] as? [String: Any])
            let scores = try #require(m["scores"] as? [String: Any])
            for key in ["deletion_auc", "average_drop"] {
                let (x, y) = (try #require(scores[key] as? Double), try #require(expected[key] as? Double))
                #expect(abs(x - y) <= 1e-6, "\(name) \(key): worker \(x), replica \(y)")
            }
        }
        // The upload is stored once, under its own key; the document under the job's.
        let cluster = PostgresCluster.shared
        #expect(try cluster.psql("SELECT count(*) FROM results WHERE key LIKE 'upload:%'", database: "compare") == "1")
        #expect(
            try cluster.psql("SELECT content_type FROM results WHERE key = '\(result.split(separator: "/").last!)'", database: "compare")
                == "application/json; charset=utf-8")
    }
}
