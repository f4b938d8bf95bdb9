import Foundation
import JobStore
import Visualization

/// Where jobs (filter visualisations, comparisons of methods, the dataset index) go and
/// where their state is read: this process's queue (`LocalJobs`), or PostgreSQL shared
/// by every replica and worker (`PostgresJobs`). A job is a canonical request whose
/// `jobPolicy` is not nil; its content address is its identity, so identical requests
/// are one job wherever they arrive.
public protocol JobBackend: Sendable {
    /// Queues the canonical request rendering from `input` (an upload; nil for none), or
    /// joins the identical job (an interactive request promotes a queued bulk one).
    /// `address` covers the request and the input; `priority` is `.bulk` when nobody waits
    /// on the result now. `resultPath` overrides the policy's result link. Throws
    /// `JobQueue.Full`, `JobQueue.ShuttingDown`, `JobsUnavailable`, or `NotAJob` for a
    /// request drawn at once.
    func submit(
        _ request: any RenderRequest, input: RenderInput?, address: ContentAddress, priority: ComputePriority,
        resultPath: String?
    ) async throws -> JobStatus
    /// nil for an unknown id.
    func status(_ id: String) async throws -> JobStatus?
    /// Cancels a queued job at once, a running one at its next step; nil for an unknown id.
    func cancel(_ id: String) async throws -> JobStatus?
    /// The status at once, then every change, ending after the final state; nil for an unknown id.
    func updates(_ id: String) async throws -> AsyncStream<JobStatus>?
    func counts() async throws -> JobCounts
    /// Stops taking jobs, lets running ones go on until `deadline` seconds, then stops them.
    func shutdown(deadline seconds: Double) async
}

extension JobBackend {
    /// Queues `request` (or joins it) with its policy's result link.
    public func submit(
        _ request: any RenderRequest, input: RenderInput? = nil, address: ContentAddress, priority: ComputePriority
    ) async throws -> JobStatus {
        try await submit(request, input: input, address: address, priority: priority, resultPath: nil)
    }
}

/// A request drawn at once (its `jobPolicy` is nil) was given to a job backend.
public struct NotAJob: Error, CustomStringConvertible {
    public let kind: String
    public var description: String { "a \(kind) request is drawn at once, not queued as a job" }
}

extension RenderRequest {
    /// The policy of a request that runs as a job (`NotAJob` otherwise).
    func queuedPolicy(address: ContentAddress, priority: ComputePriority) throws -> JobPolicy {
        guard let policy = jobPolicy(address: address, background: priority == .bulk) else { throw NotAJob(kind: Self.kind) }
        return policy
    }
}

/// Jobs waiting and running (this process's, or the cluster's).
public struct JobCounts: Sendable, Equatable {
    public var queued: Int
    public var running: Int
    /// Per priority and state, for metrics (the cluster's table; this process's queue).
    public var detail: [(priority: String, state: String, count: Int)] = []

    public static func == (a: JobCounts, b: JobCounts) -> Bool { a.queued == b.queued && a.running == b.running }
}

/// The job store cannot be reached (PostgreSQL down): new jobs get 503 `jobs_unavailable`
/// until it is back; pictures that need no job keep working.
public struct JobsUnavailable: Error, CustomStringConvertible {
    public let description: String
}

extension JobBackend {
    /// Waits until the job finishes or `seconds` pass; returns its status then.
    public func wait(_ id: String, seconds: Double) async throws -> JobStatus? {
        if seconds <= 0 { return try await status(id) }
        guard let stream = try await updates(id) else { return nil }
        let last = await withTaskGroup(of: JobStatus?.self) { group in
            group.addTask {
                var last: JobStatus?
                for await st in stream {
                    last = st
                    if st.state.isFinished { break }
                }
                return last
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let last, last.state.isFinished { return last }
        return try await status(id)
    }
}

/// Finished results by content address: this process's memory and disk cache
/// (`ResultCache`), or that cache in front of PostgreSQL (`ClusterResults`), so every
/// replica serves what any worker finished.
public protocol ResultStore: Sendable {
    func result(for key: String) async throws -> Data?
    func hasResult(for key: String) async throws -> Bool
}

extension ResultCache: ResultStore {
    public func result(for key: String) async throws -> Data? { get(key) }
    public func hasResult(for key: String) async throws -> Bool { contains(key) }
}

extension JobPriorityClass {
    /// The cluster queue's order: a single filter, a grid, pre-rendering.
    var jobPriority: JobPriority {
        switch self {
        case .interactive: return .interactive
        case .grid: return .grid
        case .bulk: return .bulk
        }
    }
}
