import Foundation
import Server
import TestSupport
import Testing
import Visualization

/// The same tests against both job backends, each built by `ConvLensService` from its
/// settings as `convlens serve` builds it (`jobs.backend` memory, or postgres against a
/// fresh database of a private PostgreSQL, with this process's worker claiming), with
/// the pictures drawn by `StubRenderer` holding every job until the test releases it.
@Suite(.serialized, .timeLimit(.minutes(5))) struct JobBackendConformanceTests {
    static let backends: [JobBackendKind] = [.memory, .postgres]

    /// A filter request of the bundled model, canonical, with its address.
    static func filter(_ index: Int) throws -> (request: FilterRequest, address: ContentAddress) {
        var request = FilterRequest(layer: "stem_activation", first: index)
        request.steps = 2
        request.size = 32
        let canonical = try request.canonical(for: bundled.session)
        return (canonical, canonical.contentAddress(model: bundled.digest))
    }

    func withBackend(
        _ kind: JobBackendKind, _ test: @Sendable (any JobBackend, StubRenderer, ConvLensService) async throws -> Void
    ) async throws {
        var databaseURL = ""
        if kind == .postgres {
            let name = "conformance_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            _ = try PostgresCluster.shared.psql("CREATE DATABASE \(name)")
            databaseURL = "postgres://convlens@127.0.0.1:\(PostgresCluster.shared.port)/\(name)"
        }
        let settings = testSettings { s in
            s.cacheDir = ""
            s.jobBackend = kind
            s.databaseURL = databaseURL
            // Two loaded cores at a full run's start: statements slower than the 5 s default.
            s.databaseTimeoutSeconds = 30
            s.jobWorkers = 1
            s.maxQueuedJobs = 8
        }
        let renderer = StubRenderer(holdingJobs: true)
        let service = try ConvLensService(
            settings: settings, session: bundled.session, modelDigest: bundled.digest, renderer: renderer)
        // The cluster migrates in the background: wait until it answers (at the start of a
        // full run on two loaded cores, migrating and the first probe took over 60 s).
        let ready = ContinuousClock.now + .seconds(180)
        while service.unreadiness != nil, ContinuousClock.now < ready { try await Task.sleep(for: .milliseconds(50)) }
        #expect(service.unreadiness == nil)
        try await renderer.releasing(service) { try await test(service.jobs, renderer, service) }
    }

    /// Polls the job until `accept` holds (the cluster's worker claims in its own time).
    func status(
        _ jobs: any JobBackend, _ id: String, within seconds: Double = 90, where accept: (JobStatus) -> Bool
    ) async throws -> JobStatus {
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while true {
            let st = try #require(try await jobs.status(id))
            if accept(st) || ContinuousClock.now > end { return st }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test(arguments: backends) func identicalRequestsAreOneJobAndOthersAreNot(_ kind: JobBackendKind) async throws {
        try await withBackend(kind) { jobs, _, _ in
            let (a, address) = try Self.filter(1)
            let first = try await jobs.submit(a, address: address, priority: .job)
            let again = try await jobs.submit(a, address: address, priority: .job)
            #expect(again.job == first.job && again.id != first.id, "one job, two requests")
            #expect(again.requesters == 2)
            let (b, other) = try Self.filter(2)
            #expect(try await jobs.submit(b, address: other, priority: .job).job != first.job)
        }
    }

    @Test(arguments: backends) func aStatusSaysWhatTheJobIsAndWhereItsResultWillBe(_ kind: JobBackendKind) async throws {
        try await withBackend(kind) { jobs, _, _ in
            let (request, address) = try Self.filter(1)
            let submitted = try await jobs.submit(request, address: address, priority: .job)
            let st = try #require(try await jobs.status(submitted.id))
            #expect(st.kind == "filter")
            #expect(st.description == request.summary)
            #expect(st.result == request.resultPath)
            #expect(st.steps == 2)
            #expect(st.priority == "job")
            #expect([.queued, .running].contains(st.state))
            #expect(try await jobs.status(kind == .memory ? "0123456789abcdef" : UUID().uuidString.lowercased()) == nil)
            #expect(try await jobs.cancel("not-a-job") == nil)
            #expect(try await jobs.updates("not-a-job") == nil)
        }
    }

    @Test(arguments: backends) func cancellingAQueuedAndARunningJobEndsBoth(_ kind: JobBackendKind) async throws {
        try await withBackend(kind) { jobs, renderer, _ in
            let (a, aAddress) = try Self.filter(1)
            let (b, bAddress) = try Self.filter(2)
            let running = try await jobs.submit(a, address: aAddress, priority: .job)
            #expect(try await status(jobs, running.id) { $0.state == .running }.state == .running)
            let queued = try await jobs.submit(b, address: bAddress, priority: .job)
            #expect(queued.state == .queued, "one worker, held by the first job")

            _ = try await jobs.cancel(queued.id)
            #expect(try await status(jobs, queued.id) { $0.state.isFinished }.state == .cancelled)
            _ = try await jobs.cancel(running.id)
            #expect(try await status(jobs, running.id) { $0.state.isFinished }.state == .cancelled)
            #expect(renderer.kindsDrawn.isEmpty)
        }
    }

    @Test(arguments: backends) func withdrawingOneRequestLeavesTheJobToTheOthers(_ kind: JobBackendKind) async throws {
        try await withBackend(kind) { jobs, renderer, _ in
            let (a, address) = try Self.filter(1)
            let mine = try await jobs.submit(a, address: address, priority: .job)
            let theirs = try await jobs.submit(a, address: address, priority: .job)
            #expect(try await status(jobs, theirs.id) { $0.state == .running }.state == .running)
            let stream = try #require(try await jobs.updates(mine.id))

            let withdrawn = try #require(try await jobs.cancel(mine.id))
            #expect(withdrawn.state == .cancelled && withdrawn.id == mine.id)
            #expect(withdrawn.error?.contains("1 other request") == true, "\(withdrawn.error ?? "")")
            var seen: [JobState] = []
            for await st in stream { seen.append(st.state) }
            #expect(seen.last == .cancelled, "the withdrawn request's events end with it: \(seen)")
            let left = try #require(try await jobs.status(theirs.id))
            #expect(left.state == .running && left.requesters == 1, "\(left)")
            #expect(try await jobs.status(mine.id)?.state == .cancelled)

            renderer.release()
            #expect(try await status(jobs, theirs.id) { $0.state.isFinished }.state == .done)
            #expect(renderer.kindsDrawn == ["filters"])
            #expect(try await jobs.status(mine.id)?.state == .cancelled, "a withdrawn request stays withdrawn")
        }
    }

    @Test(arguments: backends) func aRequestAfterTheLastWithdrawalGetsItsPictureNotTheDeadJob(_ kind: JobBackendKind) async throws {
        try await withBackend(kind) { jobs, renderer, _ in
            let (a, address) = try Self.filter(1)
            let first = try await jobs.submit(a, address: address, priority: .job)
            _ = try await status(jobs, first.id) { $0.state == .running }
            #expect(try await jobs.cancel(first.id)?.state == .cancelled)
            // At once: the job has not reached its next step yet.
            let later = try await jobs.submit(a, address: address, priority: .job)
            #expect(later.state != .cancelled && later.requesters == 1, "\(later)")
            renderer.release()
            let ended = try await status(jobs, later.id) { $0.state.isFinished }
            #expect(ended.state == .done, "\(ended)")
            #expect(try await jobs.status(first.id)?.state == .cancelled)
        }
    }

    @Test(arguments: backends) func updatesEndAtTheFinalState(_ kind: JobBackendKind) async throws {
        try await withBackend(kind) { jobs, renderer, _ in
            let (request, address) = try Self.filter(1)
            let job = try await jobs.submit(request, address: address, priority: .job)
            let stream = try #require(try await jobs.updates(job.id))
            renderer.release()
            var states: [JobState] = []
            for await st in stream { states.append(st.state) }
            #expect(states.last == .done, "the stream ends after the final state: \(states)")
            #expect(states.filter(\.isFinished).count == 1)
            #expect(renderer.kindsDrawn == ["filters"])
            let finished = try #require(try await jobs.updates(job.id))
            var after: [JobState] = []
            for await st in finished { after.append(st.state) }
            #expect(after == [.done], "a finished job's stream is its final state alone")
        }
    }

    @Test(arguments: backends) func countsAreTheJobsWaitingAndRunning(_ kind: JobBackendKind) async throws {
        try await withBackend(kind) { jobs, _, _ in
            let empty = try await jobs.counts()
            #expect((empty.queued, empty.running) == (0, 0))
            let (a, aAddress) = try Self.filter(1)
            let running = try await jobs.submit(a, address: aAddress, priority: .job)
            _ = try await status(jobs, running.id) { $0.state == .running }
            for index in [2, 3] {
                let (r, address) = try Self.filter(index)
                _ = try await jobs.submit(r, address: address, priority: .job)
            }
            let counts = try await jobs.counts()
            #expect((counts.queued, counts.running) == (2, 1))
        }
    }

    @Test(arguments: backends) func afterShutdownNothingRunsHereAndNothingNewIsTaken(_ kind: JobBackendKind) async throws {
        try await withBackend(kind) { jobs, renderer, service in
            let (a, aAddress) = try Self.filter(1)
            let running = try await jobs.submit(a, address: aAddress, priority: .job)
            _ = try await status(jobs, running.id) { $0.state == .running }
            await service.drain()
            #expect(renderer.kindsDrawn.isEmpty, "the held job was stopped, not finished")
            let (b, bAddress) = try Self.filter(2)
            await #expect(throws: (any Error).self) { _ = try await jobs.submit(b, address: bAddress, priority: .job) }
        }
    }
    /// One worker, held by a grid: a single filter someone waits for starts anyway (before,
    /// it stayed queued until the whole grid ended) and takes the slot at the grid's next step.
    @Test(arguments: backends) func aSingleFilterStartsWhileAGridHoldsTheOnlyWorker(_ kind: JobBackendKind) async throws {
        try await withBackend(kind) { jobs, renderer, _ in
            var gridRequest = FilterRequest(layer: "stem_activation", first: 0, count: 4)
            gridRequest.steps = 2
            gridRequest.size = 32
            let grid = try gridRequest.canonical(for: bundled.session)
            let gridJob = try await jobs.submit(grid, address: grid.contentAddress(model: bundled.digest), priority: .bulk)
            #expect(try await status(jobs, gridJob.id) { $0.state == .running }.state == .running)

            let (single, address) = try Self.filter(5)
            let urgent = try await jobs.submit(single, address: address, priority: .job)
            #expect(try await status(jobs, urgent.id) { $0.state == .running }.state == .running, "it runs beside the grid")
            #expect(try await jobs.status(gridJob.id)?.state == .running)
            renderer.release()
            #expect(try await status(jobs, urgent.id) { $0.state.isFinished }.state == .done)
            #expect(try await status(jobs, gridJob.id) { $0.state.isFinished }.state == .done)
        }
    }
}
