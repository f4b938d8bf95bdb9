import Engine
import Foundation
import JobStore
import Logging
import NIOCore
import Synchronization
import Visualization

/// Claims jobs from PostgreSQL and runs them on this process's compute threads:
/// `jobs.workers` claim loops, each running one job at a time, plus a reaper that
/// sends jobs whose owner died (lease expired) back to the queue. A running job
/// reports its progress, which renews its lease; a cancel requested anywhere stops it
/// at its next step. Only jobs for the model this process has loaded are claimed.
/// When every claim loop runs a grid or pre-rendering, one more loop claims a single
/// filter someone waits for: it takes the compute slot at the running job's next step
/// (the executor's shares), as the memory backend's queue lets one urgent job start.
final class ClusterWorker: Sendable {
    let store: PostgresJobStore
    let hub: JobEventHub
    let renderer: any Renderer
    let modelDigest: String
    /// How a claimed row's request is read back.
    let kinds: JobKinds
    let executor: ComputeExecutor
    let local: ResultCache
    let settings: ServerSettings
    let metrics: ServerMetrics
    let logger: Logger
    /// This process (`hostname:pid`); each claim loop owns its jobs as `hostname:pid:slot`,
    /// the fencing token that keeps a stale loop from touching a sibling's re-claimed job.
    let owner = PostgresJobStore.processOwner
    private let claiming = Atomic<Bool>(true)
    /// The priorities of the jobs running now, one entry per job.
    private let runningPriorities = Mutex<[JobPriority]>([])
    /// Running jobs' stop flags, set when the grace period after a shutdown ends.
    private let stops = Mutex<[UUID: StopFlag]>([:])

    init(
        store: PostgresJobStore, hub: JobEventHub, renderer: any Renderer, modelDigest: String, kinds: JobKinds,
        executor: ComputeExecutor, local: ResultCache, settings: ServerSettings, metrics: ServerMetrics, logger: Logger
    ) {
        self.store = store
        self.hub = hub
        self.renderer = renderer
        self.modelDigest = modelDigest
        self.kinds = kinds
        self.executor = executor
        self.local = local
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
    }

    var lease: Duration { .milliseconds(Int64(settings.leaseSeconds * 1000)) }

    /// Runs the claim loops and the reaper until `stopClaiming` (then waits for the jobs).
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            for slot in 0..<settings.jobWorkers { group.addTask { await self.claimLoop(owner: "\(self.owner):\(slot)") } }
            if settings.jobWorkers > 0 { group.addTask { await self.urgentClaimLoop(owner: "\(self.owner):urgent") } }
            group.addTask { await self.reapLoop() }
        }
    }

    /// Takes no more jobs (the first thing a shutdown does).
    func stopClaiming() { claiming.store(false, ordering: .relaxed) }

    /// Stops claiming; running jobs go on until `deadline` seconds, then are given back to the queue.
    func shutdown(deadline seconds: Double) async {
        stopClaiming()
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while runningJobs > 0, ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(50)) }
        for flag in stops.withLock({ Array($0.values) }) { flag.release() }
        while runningJobs > 0 { try? await Task.sleep(for: .milliseconds(50)) }
    }

    var runningJobs: Int { runningPriorities.withLock { $0.count } }

    private func claimLoop(owner: String) async {
        var backoff = 0.25
        while claiming.load(ordering: .relaxed) {
            do {
                guard let job = try await store.claim(modelDigests: [modelDigest], owner: owner, lease: lease) else {
                    await hub.waitForChange(of: nil, timeout: .seconds(2))
                    continue
                }
                backoff = 0.25
                metrics.recordClaim()
                await execute(job, owner: owner)
            } catch {
                logger.warning("worker: cannot claim jobs (\(error)); retrying in \(backoff) s")
                try? await Task.sleep(for: .milliseconds(Int64(backoff * 1000)))
                backoff = min(backoff * 2, 5)
            }
        }
    }

    /// Claims a single filter (priority interactive) while every running job is less
    /// urgent and all `jobs.workers` loops are busy; one such job at a time.
    private func urgentClaimLoop(owner: String) async {
        while claiming.load(ordering: .relaxed) {
            let blocked = runningPriorities.withLock { p in
                p.count >= settings.jobWorkers && p.allSatisfy { $0 > .interactive }
            }
            guard blocked else {
                await hub.waitForChange(of: nil, timeout: .milliseconds(500))
                continue
            }
            guard
                let job = try? await store.claim(
                    modelDigests: [modelDigest], owner: owner, lease: lease, atMost: .interactive)
            else {
                await hub.waitForChange(of: nil, timeout: .seconds(2))
                continue
            }
            metrics.recordClaim()
            logger.info("worker: job \(job.id) is more urgent than every running job: it takes the slot at their next step")
            await execute(job, owner: owner)
        }
    }

    private func reapLoop() async {
        while claiming.load(ordering: .relaxed) {
            if let report = try? await store.reapExpiredLeases(), !(report.requeued.isEmpty && report.failed.isEmpty) {
                logger.warning(
                    "worker: \(report.requeued.count) job(s) whose owner went silent requeued, \(report.failed.count) failed after \(settings.maxAttempts) attempts"
                )
                metrics.recordLeaseExpiries(report.requeued.count + report.failed.count)
            }
            try? await Task.sleep(for: .milliseconds(Int64(settings.leaseSeconds * 1000 / 3)))
        }
    }

    private func execute(_ job: JobRecord, owner: String) async {
        runningPriorities.withLock { $0.append(job.priority) }
        defer {
            runningPriorities.withLock { p in
                if let i = p.firstIndex(of: job.priority) { p.remove(at: i) }
            }
        }
        let flag = StopFlag()
        stops.withLock { $0[job.id] = flag }
        defer { _ = stops.withLock { $0.removeValue(forKey: job.id) } }
        let started = ContinuousClock.now
        let work: Work
        do {
            work = try await self.work(for: job)
        } catch {
            logger.error("worker: job \(job.id) cannot run: \(error)")
            try? await store.fail(id: job.id, owner: owner, reason: APIError.from(error).detail)
            return
        }
        logger.info("worker: running job \(job.id) (\(work.summary)), attempt \(job.attempts)")
        let (executor, deadline) = (self.executor, started + .milliseconds(Int64(settings.jobTimeoutSeconds * 1000)))
        let computation = Task {
            // A single filter is a job's priority; grids and pre-rendering give way to it.
            try await executor.run(job.priority == .interactive ? .job : .bulk) {
                try work.render { p in
                    flag.report(p)
                    // A step is a boundary: more deserving work may take the slot here.
                    do { try ComputeBoundary.cross() } catch { flag.release() }
                    if ContinuousClock.now > deadline { flag.timeOut() }
                    return !flag.stopped
                }
            }
        }
        let heartbeat = Task { await self.heartbeat(job, owner: owner, flag) }
        let outcome = await computation.result
        heartbeat.cancel()
        await heartbeat.value
        let final: String
        do {
            switch outcome {
            case .success(let rendered):
                try await completeWithRetries(job, owner: owner, rendered)
                local.put(job.key, rendered.body)
                final = "done"
            case .failure(VisualizationError.cancelled) where flag.reason == .cancelRequested:
                try await store.acknowledgeCancel(id: job.id, owner: owner)
                final = "cancelled"
            case .failure(VisualizationError.cancelled) where flag.reason == .released:
                try await store.release(id: job.id, owner: owner)
                final = "released"
            case .failure(VisualizationError.cancelled) where flag.reason == .timedOut:
                try await store.fail(
                    id: job.id, owner: owner, reason: "timed out after \(settings.jobTimeoutSeconds) s (jobs.timeout_seconds)")
                final = "failed"
            case .failure(VisualizationError.cancelled):
                final = "lost"  // the lease went to someone else: drop the job
            case .failure(is ComputeExecutor.Stopped):
                // Claimed as the shutdown began: it never computed; another worker takes it.
                try await store.release(id: job.id, owner: owner)
                final = "released"
            case .failure(let error):
                logger.error("worker: job \(job.id) failed: \(error)")
                try await store.fail(id: job.id, owner: owner, reason: APIError.from(error).detail)
                final = "failed"
            }
        } catch {
            logger.warning("worker: job \(job.id) could not be recorded (\(error)); its lease will expire and it will run again")
            final = "unrecorded"
        }
        metrics.recordJob(kind: job.kind, state: final, duration: ContinuousClock.now - started)
        logger.info("worker: job \(job.id) \(final)")
    }

    /// A claimed job's computation: what it is, and how to render it reporting progress.
    struct Work: Sendable {
        var summary: String
        var render: @Sendable (_ progress: (RenderProgress) -> Bool) throws -> Rendered
    }

    /// Reads the job's request (`JobKinds`) and, for a request on an upload, fetches the
    /// image from the results table. Throws a message for the job's error when it cannot run.
    private func work(for job: JobRecord) async throws -> Work {
        let (renderer, limits) = (self.renderer, settings.limits)
        let stored = try kinds.decode(kind: job.kind, json: Data(job.requestJSON.utf8))
        var input: RenderInput?
        if let digest = stored.image {
            let key = StoredJob.imageKey(digest)
            guard let upload = try await store.results.get(key: key) else {
                throw JobFailure("the uploaded image (\(key)) is not in the results table; upload it again")
            }
            input = .image(Data(upload.bytes.readableBytesView))
        }
        let request = stored.request
        let summary =
            request.jobPolicy(address: ContentAddress(hex: job.key), background: job.priority == .bulk)?.summary ?? job.kind
        return Work(summary: summary) { [input] progress in
            try renderer.render(canonical: request, input: input, limits: limits, progress: progress)
        }
    }

    struct JobFailure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// While the job computes: progress to the table (which renews the lease) after each
    /// new step, or a plain renewal every third of the lease; sees cancel requests.
    private func heartbeat(_ job: JobRecord, owner: String, _ flag: StopFlag) async {
        var sent = 0
        var lastWrite = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            let p = flag.progress
            let due = ContinuousClock.now - lastWrite > lease / 3
            guard p.step != sent || due else { continue }
            do {
                let l =
                    p.step != sent
                    ? try await store.progress(
                        id: job.id, owner: owner, step: p.step, steps: p.steps,
                        loss: p.meanLoss.isFinite ? Double(p.meanLoss) : nil)
                    : try await store.renew(id: job.id, owner: owner)
                sent = p.step
                lastWrite = ContinuousClock.now
                if l.cancelRequested { flag.cancel() }
            } catch JobStoreError.leaseLost {
                flag.lose()
                return
            } catch {
                // PostgreSQL down: keep computing; if the lease runs out meanwhile, completing fails and another worker reruns it.
            }
        }
    }

    /// The result is computed: retry a PostgreSQL outage a few times before giving up
    /// (then the lease expires and another worker computes it again).
    private func completeWithRetries(_ job: JobRecord, owner: String, _ rendered: Rendered) async throws {
        let result = StoredResult(key: job.key, contentType: rendered.format.contentType, bytes: ByteBuffer(bytes: rendered.body))
        var delay = 0.25
        for attempt in 1...6 {
            do {
                return try await store.complete(id: job.id, owner: owner, result: result)
            } catch JobStoreError.unavailable where attempt < 6 {
                try await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                delay *= 2
            }
        }
    }
}

/// A running job's latest progress and why it must stop, shared between the compute
/// thread (which reads it between steps) and the heartbeat task.
final class StopFlag: Sendable {
    enum Reason: Sendable { case cancelRequested, released, timedOut, leaseLost }

    private let state = Mutex<(progress: RenderProgress, reason: Reason?)>((RenderProgress(step: 0, steps: 0, meanLoss: .nan), nil))

    var progress: RenderProgress { state.withLock { $0.progress } }
    var reason: Reason? { state.withLock { $0.reason } }
    var stopped: Bool { reason != nil }

    func report(_ p: RenderProgress) { state.withLock { $0.progress = p } }
    func cancel() { stop(.cancelRequested) }
    func release() { stop(.released) }
    func timeOut() { stop(.timedOut) }
    func lose() { stop(.leaseLost) }

    private func stop(_ r: Reason) { state.withLock { if $0.reason == nil { $0.reason = r } } }
}
