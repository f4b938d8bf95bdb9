import Foundation
import HTTPTypes
import Server
import Testing

/// The worker queue through HTTP: 202 + Location, job status, Server-Sent Events,
/// cancellation, single-flight, priorities, a full queue, timeouts, shutdown.
@Suite(.timeLimit(.minutes(5))) struct JobTests {
    /// A filter job long enough to still be running when the test looks (the
    /// debug build takes well over a second for 1000 steps).
    static let long = "/filters/stem_activation/0?steps=1000"

    func waitUntil(_ what: String, timeout: Double = 120, _ condition: () async throws -> Bool) async throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out waiting for \(what)")
    }

    @Test func uncachedFilterAnswers202WithLocationThenTheJobFinishes() async throws {
        try await withServer { _, client in
            let r = try await client.get("/filters/stem_activation/4?steps=5&wait=0")
            #expect(r.status == .accepted, "\(r.text)")
            let location = try #require(r.headers[.location])
            #expect(location.hasPrefix("/jobs/"))
            #expect(r.headers[.retryAfter] != nil)
            let job = try r.json()
            #expect(["queued", "running"].contains(job["state"] as? String))
            let result = try #require(job["result"] as? String)
            #expect(result.hasPrefix("/filters/stem_activation/4?"))

            var last: [String: Any] = [:]
            try await waitUntil("the job to finish") {
                last = try await client.get(location).json()
                return last["state"] as? String == "done"
            }
            #expect(last["step"] as? Int == 5 && last["steps"] as? Int == 5)
            #expect(last["loss"] as? Double != nil)
            let picture = try await client.get(result)
            #expect(picture.status == .ok)
            #expect(picture.header("X-Cache") == "hit")
            #expect(picture.headers[.contentType] == "image/png")
        }
    }

    @Test func eventsStreamProgressThenDone() async throws {
        try await withServer { _, client in
            // Long enough that the stream is open before the job ends, even when the first
            // steps race ahead of the subscription on a loaded machine.
            let r = try await client.get("/filters/stem_activation/5?steps=300&wait=0")
            let location = try #require(r.headers[.location], "\(r.status) \(r.text)")
            // The stream ends after the final event, so the whole body arrives.
            let events = try await client.get(location + "/events")
            #expect(events.status == .ok)
            #expect(events.headers[.contentType] == "text/event-stream")
            let blocks = events.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            let names = blocks.compactMap { $0.split(separator: "\n").first { $0.hasPrefix("event: ") }?.dropFirst(7) }
            #expect(names.last == "done", "\(names)")
            #expect(names.dropLast().allSatisfy { $0 == "progress" })
            #expect(names.count >= 2)
            let lastData = try #require(blocks.last?.split(separator: "\n").first { $0.hasPrefix("data: ") }?.dropFirst(6))
            let status = try #require(try JSONSerialization.jsonObject(with: Data(lastData.utf8)) as? [String: Any])
            #expect(status["state"] as? String == "done")
            #expect(status["step"] as? Int == 300)
        }
    }

    /// Submits `url` without waiting and returns its request's location once the job runs.
    func runningJob(_ client: TestHTTPClient, _ url: String) async throws -> String {
        let r = try await client.get(url + "&wait=0")
        let location = try #require(r.headers[.location], "\(r.status) \(r.text.prefix(200))")
        try await waitUntil("the job to start") { try await client.get(location).json()["state"] as? String == "running" }
        return location
    }

    @Test func deleteCancelsARunningJob() async throws {
        try await withServer { _, client in
            let location = try await runningJob(client, Self.long)
            let d = try await client.execute(uri: location, method: .delete)
            #expect(d.status == .ok)
            var state = ""
            try await waitUntil("the job to stop") {
                state = try await client.get(location).json()["state"] as? String ?? ""
                return state == "cancelled"
            }
            #expect(state == "cancelled")
            // Its URL starts a new job; it was not cached.
            let again = try await client.get(Self.long + "&wait=0")
            #expect(again.status == .accepted)
            #expect(again.headers[.location] != location)
            _ = try await client.execute(uri: again.headers[.location]!, method: .delete)
            try await client.expectHealthy()
        }
    }

    /// Two clients ask for the same filter (one job); one of them cancels: the other still
    /// gets its picture (it got 503 job_cancelled when a DELETE ended the shared job).
    @Test func oneRequestersDeleteLeavesTheOtherItsPicture() async throws {
        try await withServer { _, client in
            let url = "/filters/stem_activation/5?steps=300"
            // Both ask at once (the job cannot finish in between, even on a loaded machine).
            let a = try await client.get(url + "&wait=0")
            let b = try await client.get(url + "&wait=0")
            let aLocation = try #require(a.headers[.location], "\(a.status)")
            let bLocation = try #require(b.headers[.location], "\(b.status)")
            async let waiting = client.get(url + "&wait=120")
            #expect(bLocation != aLocation)
            let withdrawn = try await client.execute(uri: bLocation, method: .delete)
            #expect(withdrawn.status == .ok)
            #expect(try withdrawn.json()["state"] as? String == "cancelled")
            let picture = try await waiting
            #expect(picture.status == .ok, "\(picture.status) \(picture.text.prefix(200))")
            #expect(picture.headers[.contentType] == "image/png")
            #expect(try await client.get(aLocation).json()["state"] as? String == "done")
            #expect(try await client.get(bLocation).json()["state"] as? String == "cancelled")
        }
    }

    /// The last requester cancels and, before the job reaches its next step, asks again:
    /// the answer is the picture, not the dying job's 503.
    @Test func askingAgainRightAfterCancellingGetsThePicture() async throws {
        try await withServer { _, client in
            let url = "/filters/stem_activation/6?steps=200"
            let location = try await runningJob(client, url)
            _ = try await client.execute(uri: location, method: .delete)
            let again = try await client.get(url + "&wait=120")
            #expect(again.status == .ok, "\(again.status) \(again.text.prefix(200))")
            #expect(again.headers[.contentType] == "image/png")
        }
    }

    @Test func identicalRequestsShareOneJob() async throws {
        try await withServer { service, client in
            async let a = client.get(Self.long + "&wait=0")
            async let b = client.get(Self.long + "&wait=0")
            let (ra, rb) = try await (a, b)
            #expect(ra.status == .accepted && rb.status == .accepted)
            let job = try ra.json()["job"] as? String
            #expect(try job != nil && job == rb.json()["job"] as? String, "single-flight: one job for identical requests")
            #expect(ra.headers[.location] != rb.headers[.location], "each request has its own id")
            #expect(try await client.get(rb.headers[.location]!).json()["requesters"] as? Int == 2)
            let other = try await client.get(Self.long + "&seed=1&wait=0")
            #expect(try other.json()["job"] as? String != job)
            let counts = try await service.jobs.counts()
            #expect(counts.queued + counts.running == 2)
            for r in [ra, rb, other] { _ = try await client.execute(uri: r.headers[.location]!, method: .delete) }
        }
    }

    @Test func aFullQueueAnswers429WithRetryAfter() async throws {
        try await withServer(
            testSettings {
                $0.maxQueuedJobs = 1
                $0.jobWorkers = 1
            }
        ) { _, client in
            let running = try await client.get(Self.long + "&wait=0")
            try await waitUntil("the first job to start") {
                try await client.get(running.headers[.location]!).json()["state"] as? String == "running"
            }
            let queued = try await client.get(Self.long + "&seed=2&wait=0")
            #expect(queued.status == .accepted)
            #expect(try queued.json()["queue_position"] as? Int == 0)
            let rejected = try await client.get(Self.long + "&seed=3&wait=0")
            #expect(rejected.status == .tooManyRequests)
            #expect(try rejected.error().code == "queue_full")
            #expect(Int(rejected.headers[.retryAfter] ?? "") ?? 0 > 0)
            // A cached or identical request still gets through.
            let joined = try await client.get(Self.long + "&seed=2&wait=0")
            #expect(try joined.json()["job"] as? String == queued.json()["job"] as? String)
            for r in [running, queued, joined] { _ = try await client.execute(uri: r.headers[.location]!, method: .delete) }
            try await client.expectHealthy()
        }
    }

    @Test func oneFilterGoesAheadOfQueuedGrids() async throws {
        try await withServer(testSettings { $0.jobWorkers = 1 }) { _, client in
            let blocker = try await client.get(Self.long + "&wait=0")
            try await waitUntil("the blocker to start") {
                try await client.get(blocker.headers[.location]!).json()["state"] as? String == "running"
            }
            let grid = try await client.get("/filters/stem_activation?count=4&steps=2&wait=0")
            let single = try await client.get("/filters/stem_activation/9?steps=2&wait=0")
            #expect(try grid.json()["priority"] as? String == "bulk")
            #expect(try single.json()["priority"] as? String == "job")
            #expect(
                try await client.get(single.headers[.location]!).json()["queue_position"] as? Int == 0,
                "the interactive job is first in line")
            #expect(try await client.get(grid.headers[.location]!).json()["queue_position"] as? Int == 1)
            _ = try await client.execute(uri: blocker.headers[.location]!, method: .delete)
            var order: [String: Double] = [:]
            try await waitUntil("both to finish") {
                for (name, r) in [("grid", grid), ("single", single)] {
                    let s = try await client.get(r.headers[.location]!).json()
                    if s["state"] as? String == "done" { order[name] = s["started_at"] as? Double }
                }
                return order.count == 2
            }
            #expect(order["single"]! <= order["grid"]!)
        }
    }

    @Test func aHeatmapDoesNotWaitForARunningGrid() async throws {
        try await withServer(testSettings { $0.computeThreads = 1 }) { _, client in
            let grid = try await client.get("/filters/stem_activation?count=16&steps=1000&wait=0")
            let location = try #require(grid.headers[.location])
            try await waitUntil("the grid to start") { try await client.get(location).json()["state"] as? String == "running" }
            let began = Date()
            let heat = try await client.post("/heatmap", image: try sample("chelsea.png"))
            let took = Date().timeIntervalSince(began)
            #expect(heat.status == .ok)
            let status = try await client.get(location).json()
            #expect(status["state"] as? String == "running", "the heatmap ran between the grid's steps (took \(took) s)")
            _ = try await client.execute(uri: location, method: .delete)
        }
    }

    @Test func aJobPastItsTimeoutFailsAndTheWaitingRequestGets504() async throws {
        try await withServer(testSettings { $0.jobTimeoutSeconds = 0.5 }) { _, client in
            let r = try await client.get(Self.long + "&wait=60")
            #expect(r.status == .gatewayTimeout)
            #expect(try r.error().code == "job_timeout")
            try await client.expectHealthy()
        }
    }

    @Test func overloadedComputeAnswers429() async throws {
        try await withServer(
            testSettings {
                $0.maxPendingComputations = 1
                $0.computeThreads = 1
            }
        ) { _, client in
            let photo = try sample("astronaut.png")
            // Many heatmaps at once (a pool of connections) on one compute thread with room for one waiting.
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<8 { group.addTask { try await client.post("/heatmap", image: photo).status } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.contains(.tooManyRequests), "\(statuses)")
            #expect(statuses.contains(.ok))
            #expect(statuses.allSatisfy { $0 == .ok || $0 == .tooManyRequests })
            try await client.expectHealthy()
        }
    }
}

@Test func workOfferedAfterShutdownIsA503NotACrashOrA500() async throws {
    let executor = ComputeExecutor(threads: 1, ompThreads: 1, maxPending: 4)
    #expect(try await executor.run { 41 + 1 } == 42)
    executor.shutdown()
    do {
        _ = try await executor.run { 1 }
        Issue.record("a stopped executor must refuse work")
    } catch {
        #expect(error is ComputeExecutor.Stopped)
        let api = APIError.from(error)
        #expect(api.status == .serviceUnavailable && api.code == "shutting_down")
    }
}
