import Foundation
import JobStore
import Logging
import NIOCore
import Visualization

/// The cluster backend: jobs are rows in PostgreSQL that any replica queues and reads
/// and any worker process (this one too, with `jobs.workers` > 0) claims and runs.
final class PostgresJobs: JobBackend {
    let store: PostgresJobStore
    let hub: JobEventHub
    let settings: ServerSettings
    let modelDigest: String
    /// How a row's request is read back (its status's description and result link).
    let kinds: JobKinds
    /// Jobs that read this process's own files (the dataset index of its folders): they run
    /// here and store into this process's cache; their ids (16 hex digits) never look like
    /// a cluster job's UUID. Not rows in PostgreSQL: any worker could claim one, and only
    /// this replica has its folders. Each replica indexes its own folders (the listing is
    /// part of the index's address, so replicas with the same photos compute the same bytes).
    let inProcess: JobQueue
    /// What draws the in-process jobs.
    let renderer: any Renderer

    init(
        store: PostgresJobStore, hub: JobEventHub, settings: ServerSettings, modelDigest: String, kinds: JobKinds,
        inProcess: JobQueue, renderer: any Renderer
    ) {
        self.store = store
        self.hub = hub
        self.settings = settings
        self.modelDigest = modelDigest
        self.kinds = kinds
        self.inProcess = inProcess
        self.renderer = renderer
    }

    /// An upload goes into the results table first (write-once by key), so whichever
    /// worker claims the job can read it.
    func submit(
        _ request: any RenderRequest, input: RenderInput?, address: ContentAddress, priority: ComputePriority,
        resultPath: String?
    ) async throws -> JobStatus {
        let policy = try request.queuedPolicy(address: address, priority: priority)
        if policy.staysInProcess {
            return try inProcess.submit(
                request, input: input, address: address, priority: priority, resultPath: resultPath, renderer: renderer,
                limits: settings.limits)
        }
        return try await unavailableAsJobs {
            let queued = try await store.queuedCount()
            if queued >= settings.maxQueuedJobs, try await store.status(key: address.hex) == nil {
                throw JobQueue.Full(queued: queued)
            }
            var job = StoredJob(request: request, image: nil)
            switch input {
            case .image(let image):
                let digest = SHA256Digest.hex([image])
                job.image = digest
                try await store.results.put(
                    StoredResult(key: StoredJob.imageKey(digest), contentType: "application/octet-stream", bytes: ByteBuffer(bytes: image)))
            case nil:
                break
            case .tensor, .files:
                throw NotAJob(kind: "\(policy.kind) on a model input or files")
            }
            let new = NewJob(
                key: address.hex, kind: policy.kind, requestJSON: String(decoding: job.json, as: UTF8.self),
                modelDigest: modelDigest, priority: policy.priority.jobPriority, maxAttempts: settings.maxAttempts)
            return JobStatus(try await store.request(new).request, kinds: kinds)
        }
    }

    func status(_ id: String) async throws -> JobStatus? {
        if let local = inProcess.status(id) { return local }
        guard let uuid = UUID(uuidString: id) else { return nil }
        return try await unavailableAsJobs { try await store.request(id: uuid).map { JobStatus($0, kinds: kinds) } }
    }

    func cancel(_ id: String) async throws -> JobStatus? {
        if inProcess.status(id) != nil { return inProcess.cancel(id) }
        guard let uuid = UUID(uuidString: id) else { return nil }
        return try await unavailableAsJobs {
            if case .notFound = try await store.withdraw(request: uuid) { return nil }
            return try await store.request(id: uuid).map { JobStatus($0, kinds: kinds) }
        }
    }

    func updates(_ id: String) async throws -> AsyncStream<JobStatus>? {
        if inProcess.status(id) != nil { return inProcess.updates(id) }
        guard let uuid = UUID(uuidString: id),
            let first = try await unavailableAsJobs({ try await self.store.request(id: uuid) }).map({ JobStatus($0, kinds: self.kinds) })
        else { return nil }
        let job = UUID(uuidString: first.job) ?? uuid
        let (stream, continuation) = AsyncStream<JobStatus>.makeStream(bufferingPolicy: .bufferingNewest(64))
        continuation.yield(first)
        if first.state.isFinished {
            continuation.finish()
            return stream
        }
        let (store, hub, kinds) = (self.store, self.hub, self.kinds)
        let task = Task {
            var last = first
            while !Task.isCancelled {
                // A withdrawal changes the request, not the job: the timeout notices it.
                await hub.waitForChange(of: job, timeout: .seconds(1))
                guard let record = try? await store.request(id: uuid) else { continue }
                let now = JobStatus(record, kinds: kinds)
                if now != last {
                    continuation.yield(now)
                    last = now
                }
                if now.state.isFinished { break }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    func counts() async throws -> JobCounts {
        let rows = try await unavailableAsJobs { try await store.counts() }
        func total(_ state: JobState) -> Int { rows.filter { $0.state == state }.reduce(0) { $0 + $1.count } }
        return JobCounts(
            queued: total(.queued), running: total(.running),
            detail: rows.map { ("\($0.priority)", $0.state.rawValue, $0.count) })
    }

    /// Workers are stopped by the service; queued rows stay queued for the others.
    func shutdown(deadline seconds: Double) async { await inProcess.shutdown(deadline: seconds) }
}

extension JobStatus {
    /// A request for a job row as `GET /jobs/{id}` shows it: a withdrawn one is cancelled
    /// from its requester's side whatever the job does.
    init(_ request: JobRequestRecord, kinds: JobKinds) {
        self.init(request.job, kinds: kinds)
        id = request.id.uuidString.lowercased()
        requesters = request.requesters
        if let withdrawn = request.withdrawnAt {
            state = .cancelled
            finishedAt = withdrawn.timeIntervalSince1970
            error = JobStatus.withdrawalReason(others: request.requesters)
        }
    }

    /// A job row as `GET /jobs/{id}` shows it (what it computes comes from its request).
    init(_ r: JobRecord, kinds: JobKinds) {
        let policy = (try? kinds.decode(kind: r.kind, json: Data(r.requestJSON.utf8)))?.request.jobPolicy(
            address: ContentAddress(hex: r.key), background: r.priority == .bulk)
        // Known from the request before a worker reports any (as the local queue shows it).
        let steps = r.steps == 0 ? policy?.steps ?? 0 : r.steps
        self.init(
            id: r.id.uuidString.lowercased(), job: r.id.uuidString.lowercased(), requesters: 0, kind: r.kind,
            description: policy?.summary ?? r.kind,
            priority: r.priority == .bulk ? "bulk" : (r.priority == .grid ? "grid" : "job"), state: r.state,
            step: r.step, steps: steps, loss: r.loss.map(Float.init), result: policy?.resultPath ?? "",
            error: r.error, createdAt: r.createdAt.timeIntervalSince1970, startedAt: r.startedAt?.timeIntervalSince1970,
            finishedAt: r.finishedAt?.timeIntervalSince1970, queuePosition: nil,
            timedOut: r.error?.contains("jobs.timeout_seconds") ?? false,
            worker: r.leaseOwner, attempt: r.attempts > 0 ? r.attempts : nil)
    }
}
