import Engine
import Foundation
import JobStore
import Logging
import Synchronization
import Visualization

public typealias JobState = JobStore.JobState

/// What `GET /jobs/{id}` answers and each Server-Sent Event carries. `id` names one
/// request for the job, not the job: identical requests are one job (`job`), and each
/// requester cancels only its own interest (`DELETE /jobs/{id}`); the job stops when no
/// request is left waiting for it.
public struct JobStatus: Sendable, Codable, Equatable {
    public var id: String
    /// The job computing this request, shared by every identical request.
    public var job: String
    /// Requests still waiting for the job (this one included unless it was withdrawn).
    public var requesters: Int
    public var kind: String
    public var description: String
    public var priority: String
    public var state: JobState
    public var step: Int
    public var steps: Int
    public var loss: Float?
    /// Where the finished picture is (served from the cache); set from the start.
    public var result: String
    public var error: String?
    /// Seconds since the job was created / started / finished.
    public var createdAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    /// Jobs ahead of this one (queued jobs only).
    public var queuePosition: Int?
    /// Whether it failed by running out of time.
    public var timedOut: Bool
    /// The process that ran it, with the PostgreSQL backend (its lease owner); nil for this
    /// process's own jobs, whose host and PID are no client's business.
    public var worker: String?
    /// Which run this is: above 1 when a process died holding the job and another took it.
    public var attempt: Int?

    /// What a withdrawn request's status says, with `others` requests still waiting.
    static func withdrawalReason(others: Int) -> String {
        others == 0 ? "cancelled" : "withdrawn: the job goes on for the \(others) other request\(others == 1 ? "" : "s") waiting for it"
    }

    enum CodingKeys: String, CodingKey {
        case id, job, requesters, kind, description, priority, state, step, steps, loss, result, error
        case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
        case queuePosition = "queue_position", timedOut = "timed_out", worker, attempt
    }
}

/// Handed to a running job: report progress; `false` means stop (cancelled, timed out
/// or shutting down). Between steps it lets waiting interactive requests run.
public struct JobControl: Sendable {
    let job: JobQueue.Job
    let queue: JobQueue

    public func report(step: Int, steps: Int, loss: Float) -> Bool {
        queue.progress(job, step: step, steps: steps, loss: loss)
    }
}

/// The bounded worker queue for costly work (filter visualisations). Identical jobs in
/// flight are computed once (single-flight, by content key); interactive jobs (one filter)
/// go ahead of bulk ones (grids, pre-rendering); a full queue rejects with 429. A finished
/// job's PNG goes into the result cache under its key before the job reports done, so the
/// result URL answers from the cache. Each submission is a request with its own id: a
/// cancel withdraws that request, and the job stops only when none is left, so one client
/// cannot cancel what another waits for; a job being stopped is never joined.
public final class JobQueue: Sendable {
    public struct Full: Error, CustomStringConvertible {
        public let queued: Int
        public var description: String { "the job queue is full (\(queued) jobs waiting); retry later" }
    }
    public struct ShuttingDown: Error, CustomStringConvertible {
        public var description: String { "the server is shutting down and takes no new jobs" }
    }

    final class Job: Sendable {
        let id: String
        let key: String
        let kind: String
        /// What the job runs; dropped when it finishes, with what it holds (an upload).
        let work: Mutex<(@Sendable (JobControl) throws -> Data)?>
        /// Bytes of the upload `work` holds (a comparison's image), counted while it is held.
        let uploadBytes: Int
        let status: Mutex<JobStatus>
        let stopRequested = Atomic<Bool>(false)
        let deadline: Mutex<ContinuousClock.Instant?> = Mutex(nil)
        /// Subscribers, each with the request it follows (its events carry that id).
        let listeners = Mutex<[UUID: (request: String, continuation: AsyncStream<JobStatus>.Continuation)]>([:])

        init(
            id: String, key: String, kind: String, status: JobStatus, uploadBytes: Int,
            work: @escaping @Sendable (JobControl) throws -> Data
        ) {
            self.id = id
            self.key = key
            self.kind = kind
            self.status = Mutex(status)
            self.uploadBytes = uploadBytes
            self.work = Mutex(work)
        }

        var priority: ComputePriority { status.withLock { $0.priority == "bulk" ? .bulk : .job } }
    }

    private struct State {
        /// Unfinished jobs by the id of each request still waiting for them; a finished or
        /// withdrawn request leaves only its status, in `finished`.
        var requests: [String: Job] = [:]
        /// The requests still waiting for each unfinished job, by job id.
        var requesters: [String: Set<String>] = [:]
        var active: [String: Job] = [:]  // by key: queued or running
        var queued: [Job] = []  // in run order
        /// The priorities of the running jobs, one entry per job.
        var runningPriorities: [ComputePriority] = []
        var running: Int { runningPriorities.count }
        var finished: FinishedJobs
        var accepting = true
        /// Upload bytes the unfinished jobs hold.
        var uploadBytes = 0
    }

    private let state: Mutex<State>
    private let executor: ComputeExecutor
    private let cache: ResultCache
    private let metrics: ServerMetrics
    private let workers: Int
    private let maxQueued: Int
    private let timeout: Duration
    private let logger: Logger
    private let clock = ContinuousClock()
    private let epoch = Date()

    public init(
        executor: ComputeExecutor, cache: ResultCache, metrics: ServerMetrics,
        workers: Int, maxQueued: Int, timeoutSeconds: Double, finishedBytes: Int, logger: Logger
    ) {
        state = Mutex(State(finished: FinishedJobs(capacityBytes: finishedBytes)))
        self.logger = logger
        self.executor = executor
        self.cache = cache
        self.metrics = metrics
        self.workers = workers
        self.maxQueued = maxQueued
        self.timeout = .milliseconds(Int64(timeoutSeconds * 1000))
    }

    private func now() -> Double { Date().timeIntervalSince1970 }

    private static func newID() -> String {
        String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16)).lowercased()
    }

    /// Submits a job, or joins the identical one already queued or running (not one being
    /// stopped), as a new request: the status's `id` is the request's. A bulk job joined by
    /// an interactive request is promoted. `uploadBytes`: the size of
    /// an upload `work` holds, released when the job finishes however it ends.
    public func submit(
        key: String, kind: String, description: String, result: String, priority: ComputePriority,
        steps: Int = 0, uploadBytes: Int = 0, work: @escaping @Sendable (JobControl) throws -> Data
    ) throws -> JobStatus {
        let request: String = try state.withLock { s in
            guard s.accepting else { throw ShuttingDown() }
            let request = Self.newID()
            if let existing = s.active[key], !existing.stopRequested.load(ordering: .relaxed) {
                // Only while it is in the queue: a job taken from it but not yet marked
                // running would be queued a second time (and run twice).
                if priority < existing.priority, s.queued.contains(where: { $0 === existing }) {
                    existing.status.withLock { $0.priority = priority.name }
                    s.queued.removeAll { $0 === existing }
                    insert(existing, into: &s.queued)
                }
                s.requests[request] = existing
                s.requesters[existing.id, default: []].insert(request)
                return request
            }
            guard s.queued.count < maxQueued else { throw Full(queued: s.queued.count) }
            let id = Self.newID()
            let status = JobStatus(
                id: id, job: id, requesters: 0, kind: kind, description: description, priority: priority.name, state: .queued,
                step: 0, steps: steps, loss: nil, result: result, error: nil, createdAt: now(),
                startedAt: nil, finishedAt: nil, queuePosition: nil, timedOut: false)
            let job = Job(id: id, key: key, kind: kind, status: status, uploadBytes: uploadBytes, work: work)
            s.uploadBytes += uploadBytes
            metrics.jobUploadBytes.set(to: Double(s.uploadBytes))
            s.requests[request] = job
            s.requesters[id] = [request]
            s.active[key] = job
            insert(job, into: &s.queued)
            metrics.queueDepth.set(to: Double(s.queued.count))
            return request
        }
        startWaitingJobs()
        return self.status(request)!
    }

    private func insert(_ job: Job, into queue: inout [Job]) {
        let p = job.priority
        let at = queue.firstIndex { $0.priority > p } ?? queue.count
        queue.insert(job, at: at)
    }

    /// The status of the request `id` (its job's, with its place in the queue), or nil
    /// for an unknown id.
    public func status(_ id: String) -> JobStatus? {
        state.withLock { s in
            guard let job = s.requests[id] else { return s.finished[id] }
            var st = view(job.status.withLock { $0 }, as: id, in: s)
            if st.state == .queued { st.queuePosition = s.queued.firstIndex { $0 === job } }
            return st
        }
    }

    /// A job's status as the request `id` sees it.
    private func view(_ st: JobStatus, as request: String, in s: State) -> JobStatus {
        var st = st
        st.id = request
        st.requesters = s.requesters[st.job]?.count ?? 0
        return st
    }

    public var counts: (queued: Int, running: Int) { state.withLock { ($0.queued.count, $0.running) } }

    /// Bytes of uploads held by jobs that have not finished.
    public var heldUploadBytes: Int { state.withLock { $0.uploadBytes } }

    /// Withdraws the request `id`: its status says cancelled from now on; the job goes on
    /// while other requests wait for it, and otherwise stops (a queued job at once, a
    /// running one at its next step; a request arriving meanwhile starts a new job).
    /// A finished request stays as it ended. nil for an unknown id.
    public func cancel(_ id: String) -> JobStatus? {
        let (withdrawn, stopped, queuedJob, listeners) = state.withLock {
            s -> (JobStatus?, Job?, Job?, [AsyncStream<JobStatus>.Continuation]) in
            guard let job = s.requests.removeValue(forKey: id) else { return (nil, nil, nil, []) }
            s.requesters[job.id]?.remove(id)
            let others = s.requesters[job.id]?.count ?? 0
            var st = view(job.status.withLock { $0 }, as: id, in: s)
            st.state = .cancelled
            st.finishedAt = now()
            st.queuePosition = nil
            st.error = JobStatus.withdrawalReason(others: others)
            s.finished.insert(st)
            metrics.finishedJobBytes.set(to: Double(s.finished.bytes))
            let listeners = job.listeners.withLock { l -> [AsyncStream<JobStatus>.Continuation] in
                let mine = l.filter { $0.value.request == id }
                for token in mine.keys { l[token] = nil }
                return mine.values.map(\.continuation)
            }
            guard others == 0 else { return (st, nil, nil, listeners) }
            job.stopRequested.store(true, ordering: .relaxed)
            if s.active[job.key] === job { s.active[job.key] = nil }
            guard let i = s.queued.firstIndex(where: { $0 === job }) else { return (st, job, nil, listeners) }
            s.queued.remove(at: i)
            metrics.queueDepth.set(to: Double(s.queued.count))
            return (st, job, job, listeners)
        }
        for l in listeners {
            if let withdrawn { l.yield(withdrawn) }
            l.finish()
        }
        if let queuedJob { finish(queuedJob, state: .cancelled, error: "cancelled before it started", timedOut: false) }
        if stopped != nil { logger.debug("job \(stopped!.id) stopped: its last request was withdrawn") }
        return withdrawn ?? status(id)
    }

    /// A stream of the job's status: the current one at once, then every change,
    /// ending after the final state. nil for an unknown id.
    public func updates(_ id: String) -> AsyncStream<JobStatus>? {
        let (job, ended) = state.withLock { ($0.requests[id], $0.finished[id]) }
        let (stream, continuation) = AsyncStream<JobStatus>.makeStream(bufferingPolicy: .bufferingNewest(64))
        guard let job else {
            guard let ended else { return nil }
            continuation.yield(ended)
            continuation.finish()
            return stream
        }
        let token = UUID()
        let current: JobStatus = job.listeners.withLock { listeners in
            let st = job.status.withLock { $0 }
            if !st.state.isFinished { listeners[token] = (id, continuation) }
            return st
        }
        continuation.yield(status(id) ?? current)
        if current.state.isFinished { continuation.finish() }
        continuation.onTermination = { [weak job] _ in
            _ = job?.listeners.withLock { $0.removeValue(forKey: token) }
        }
        return stream
    }

    fileprivate func progress(_ job: Job, step: Int, steps: Int, loss: Float) -> Bool {
        let st = job.status.withLock { s -> JobStatus in
            s.step = step
            s.steps = steps
            s.loss = loss.isFinite ? loss : nil
            return s
        }
        broadcast(job, st)
        // A step is a boundary: more deserving work may take the slot here (the job resumes
        // where it stopped); stopped by the executor, the job ends as if cancelled.
        do { try ComputeBoundary.cross() } catch { return false }
        if job.stopRequested.load(ordering: .relaxed) { return false }
        if let deadline = job.deadline.withLock({ $0 }), clock.now > deadline { return false }
        return true
    }

    private func broadcast(_ job: Job, _ st: JobStatus) {
        let listeners = job.listeners.withLock { Array($0.values) }
        guard !listeners.isEmpty else { return }
        let count = state.withLock { $0.requesters[job.id]?.count ?? 0 }
        for l in listeners {
            var mine = st
            mine.id = l.request
            mine.requesters = count
            l.continuation.yield(mine)
        }
    }

    private func startWaitingJobs() {
        while let job = state.withLock({ s -> Job? in
            guard let head = s.queued.first else { return nil }
            // One job more urgent than every running one starts beside them: it takes the
            // compute slot at their next step, and they resume when it is done.
            let preempts = s.running == workers && s.runningPriorities.allSatisfy { head.priority < $0 }
            guard s.running < workers || preempts else { return nil }
            s.runningPriorities.append(head.priority)
            let job = s.queued.removeFirst()
            metrics.queueDepth.set(to: Double(s.queued.count))
            metrics.runningJobs.set(to: Double(s.running))
            return job
        }) {
            Task { await self.execute(job) }
        }
    }

    private func execute(_ job: Job) async {
        let started = clock.now
        job.deadline.withLock { $0 = started + timeout }
        let st = job.status.withLock { s -> JobStatus in
            s.state = .running
            s.startedAt = now()
            s.attempt = 1
            return s
        }
        broadcast(job, st)
        let control = JobControl(job: job, queue: self)
        let cache = self.cache
        let key = job.key
        do {
            _ = try await executor.run(job.priority) {
                guard let work = job.work.withLock({ $0 }) else { throw VisualizationError.cancelled }
                let data = try work(control)
                cache.put(key, data)
                return data.count
            }
            finish(job, state: .done, error: nil, timedOut: false)
        } catch VisualizationError.cancelled {
            let timedOut = !job.stopRequested.load(ordering: .relaxed)
            if timedOut {
                finish(job, state: .failed, error: "timed out after \(timeout) (jobs.timeout_seconds)", timedOut: true)
            } else {
                finish(job, state: .cancelled, error: "cancelled", timedOut: false)
            }
        } catch is ComputeExecutor.Stopped {
            // The shutdown began before this job reached a compute slot: it never started.
            finish(job, state: .cancelled, error: "the server is shutting down", timedOut: false)
        } catch {
            logger.error("job \(job.id) (\(job.kind)) failed: \(error)")
            finish(job, state: .failed, error: APIError.from(error).detail, timedOut: false)
        }
        metrics.recordJob(kind: job.kind, state: job.status.withLock { $0.state.rawValue }, duration: clock.now - started)
        state.withLock { s in
            if let i = s.runningPriorities.firstIndex(of: job.priority) { s.runningPriorities.remove(at: i) }
            metrics.runningJobs.set(to: Double(s.running))
        }
        startWaitingJobs()
    }

    private func finish(_ job: Job, state final: JobState, error: String?, timedOut: Bool) {
        let st = job.status.withLock { s -> JobStatus in
            s.state = final
            s.error = error
            s.timedOut = timedOut
            s.finishedAt = now()
            return s
        }
        let held = job.work.withLock { work -> Bool in
            defer { work = nil }
            return work != nil
        }
        let count: Int = state.withLock { s in
            if held {
                s.uploadBytes -= job.uploadBytes
                metrics.jobUploadBytes.set(to: Double(s.uploadBytes))
            }
            if s.active[job.key] === job { s.active[job.key] = nil }
            // From here each request still waiting is the job's final status: listeners
            // hear it below.
            let requests = s.requesters.removeValue(forKey: job.id) ?? []
            for request in requests {
                s.requests[request] = nil
                var mine = st
                mine.id = request
                mine.requesters = requests.count
                s.finished.insert(mine)
            }
            metrics.finishedJobBytes.set(to: Double(s.finished.bytes))
            return requests.count
        }
        let listeners = job.listeners.withLock { l -> [(request: String, continuation: AsyncStream<JobStatus>.Continuation)] in
            let all = Array(l.values)
            l.removeAll()
            return all
        }
        for l in listeners {
            var mine = st
            mine.id = l.request
            mine.requesters = count
            l.continuation.yield(mine)
            l.continuation.finish()
        }
    }

    /// Stops taking jobs, cancels the queued ones, lets running ones finish until
    /// `deadline`, then stops them at their next step and waits for them.
    public func shutdown(deadline seconds: Double) async {
        let queued: [Job] = state.withLock { s in
            s.accepting = false
            let q = s.queued
            s.queued.removeAll()
            for j in q { s.active[j.key] = nil }
            metrics.queueDepth.set(to: 0)
            return q
        }
        for j in queued { finish(j, state: .cancelled, error: "cancelled: the server shut down before it started", timedOut: false) }
        let end = clock.now + .milliseconds(Int64(seconds * 1000))
        while counts.running > 0, clock.now < end { try? await Task.sleep(for: .milliseconds(50)) }
        if counts.running > 0 {
            state.withLock { s in for j in s.active.values { j.stopRequested.store(true, ordering: .relaxed) } }
            while counts.running > 0 { try? await Task.sleep(for: .milliseconds(50)) }
        }
    }
}
