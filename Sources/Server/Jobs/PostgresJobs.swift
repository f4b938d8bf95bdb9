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
    /// Jobs that read this process's own files (the dataset index of its folders): they run
    /// here and store into this process's cache; their ids (16 hex digits) never look like
    /// a cluster job's UUID.
    let inProcess: JobQueue

    init(store: PostgresJobStore, hub: JobEventHub, settings: ServerSettings, modelDigest: String, inProcess: JobQueue) {
        self.store = store
        self.hub = hub
        self.settings = settings
        self.modelDigest = modelDigest
        self.inProcess = inProcess
    }

    func submit(_ request: FilterRequest, address: ContentAddress, priority: ComputePriority) async throws -> JobStatus {
        try await unavailableAsJobs {
            let queued = try await store.queuedCount()
            if queued >= settings.maxQueuedJobs, try await store.status(key: address.hex) == nil {
                throw JobQueue.Full(queued: queued)
            }
            let new = NewJob(
                key: address.hex, kind: request.jobKind, requestJSON: String(decoding: request.canonicalJSON, as: UTF8.self),
                modelDigest: modelDigest,
                priority: priority == .bulk && request.count != 1
                    ? .bulk
                    : (request.count == 1 ? .interactive : .grid),
                maxAttempts: settings.maxAttempts)
            return JobStatus(try await store.enqueue(new).job)
        }
    }

    /// The image goes into the results table first (write-once by key), so whichever worker
    /// claims the job can read it.
    func submit(_ request: CompareRequest, image: Data, address: ContentAddress) async throws -> JobStatus {
        try await unavailableAsJobs {
            let queued = try await store.queuedCount()
            if queued >= settings.maxQueuedJobs, try await store.status(key: address.hex) == nil {
                throw JobQueue.Full(queued: queued)
            }
            let job = CompareJob(request: request, image: SHA256Digest.hex([image]))
            try await store.results.put(
                StoredResult(key: job.imageKey, contentType: "application/octet-stream", bytes: ByteBuffer(bytes: image)))
            let new = NewJob(
                key: address.hex, kind: CompareJob.kind, requestJSON: String(decoding: try JSONEncoder().encode(job), as: UTF8.self),
                modelDigest: modelDigest, priority: .grid, maxAttempts: settings.maxAttempts)
            return JobStatus(try await store.enqueue(new).job)
        }
    }

    /// Not a row in PostgreSQL: any worker could claim one, and only this replica has its
    /// folders. Each replica indexes its own folders (the listing is part of the index's
    /// address, so replicas with the same photos compute the same bytes).
    func submitInProcess(
        key: String, kind: String, description: String, result: String, steps: Int,
        work: @escaping @Sendable (JobControl) throws -> Data
    ) async throws -> JobStatus {
        try inProcess.submit(key: key, kind: kind, description: description, result: result, priority: .job, steps: steps, work: work)
    }

    func status(_ id: String) async throws -> JobStatus? {
        if let local = inProcess.status(id) { return local }
        guard let uuid = UUID(uuidString: id) else { return nil }
        return try await unavailableAsJobs { try await store.status(id: uuid).map(JobStatus.init) }
    }

    func cancel(_ id: String) async throws -> JobStatus? {
        if inProcess.status(id) != nil { return inProcess.cancel(id) }
        guard let uuid = UUID(uuidString: id) else { return nil }
        return try await unavailableAsJobs {
            if case .notFound = try await store.cancel(id: uuid) { return nil }
            return try await store.status(id: uuid).map(JobStatus.init)
        }
    }

    func updates(_ id: String) async throws -> AsyncStream<JobStatus>? {
        if inProcess.status(id) != nil { return inProcess.updates(id) }
        guard let uuid = UUID(uuidString: id), let first = try await status(id) else { return nil }
        let (stream, continuation) = AsyncStream<JobStatus>.makeStream(bufferingPolicy: .bufferingNewest(64))
        continuation.yield(first)
        if first.state.isFinished {
            continuation.finish()
            return stream
        }
        let (store, hub) = (self.store, self.hub)
        let task = Task {
            var last = first
            while !Task.isCancelled {
                await hub.waitForChange(of: uuid, timeout: .seconds(1))
                guard let record = try? await store.status(id: uuid) else { continue }
                let now = JobStatus(record)
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
    /// A job row as `GET /jobs/{id}` shows it (what it computes comes from its request).
    init(_ r: JobRecord) {
        let description: String?
        let result: String?
        var steps = r.steps
        if r.kind == CompareJob.kind {
            let job = try? JSONDecoder().decode(CompareJob.self, from: Data(r.requestJSON.utf8))
            description = job?.request.summary
            result = CompareRequest.resultPath(ContentAddress(hex: r.key))
            // Known from the request before a worker reports any (as the local queue shows it).
            if steps == 0 { steps = job?.request.steps ?? 0 }
        } else {
            let request = try? JSONDecoder().decode(FilterRequest.self, from: Data(r.requestJSON.utf8))
            (description, result) = (request?.summary, request?.resultPath)
        }
        self.init(
            id: r.id.uuidString.lowercased(), kind: r.kind, description: description ?? r.kind,
            priority: r.priority == .bulk ? "bulk" : (r.priority == .grid ? "grid" : "job"), state: r.state,
            step: r.step, steps: steps, loss: r.loss.map(Float.init), result: result ?? "",
            error: r.error, createdAt: r.createdAt.timeIntervalSince1970, startedAt: r.startedAt?.timeIntervalSince1970,
            finishedAt: r.finishedAt?.timeIntervalSince1970, queuePosition: nil,
            timedOut: r.error?.contains("jobs.timeout_seconds") ?? false,
            worker: r.leaseOwner, attempt: r.attempts > 0 ? r.attempts : nil)
    }
}
