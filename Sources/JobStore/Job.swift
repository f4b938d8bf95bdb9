import Foundation

/// A job's life: queued → running → done | failed | cancelled. A running job
/// whose lease expires goes back to queued (or to failed after `maxAttempts`).
/// failed and cancelled jobs may be queued again by a new enqueue of the same key.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, done, failed, cancelled

    /// No worker will touch the job again unless it is re-enqueued.
    public var isFinished: Bool { self == .done || self == .failed || self == .cancelled }
}

/// Claim order: lower raw value first, then oldest first within a priority.
public enum JobPriority: Int16, Sendable, Codable, CaseIterable, Comparable {
    /// One filter a person is waiting for.
    case interactive = 0
    /// A grid of filters a person is waiting for.
    case grid = 1
    /// Pre-rendering nobody is watching yet.
    case bulk = 2

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// What a caller asks to have computed. `key` is the content address of the
/// work: two requests with the same key anywhere in the cluster are one job.
public struct NewJob: Sendable {
    public var key: String
    public var kind: String
    /// The serialised typed request, stored as jsonb and handed back to the
    /// worker. Opaque here; must be valid JSON (jsonb may reorder keys/whitespace).
    public var requestJSON: String
    /// Only workers that have this model loaded claim the job.
    public var modelDigest: String
    public var priority: JobPriority
    /// How many times a lease may expire (worker crash, hang) before the job fails.
    public var maxAttempts: Int

    public init(key: String, kind: String, requestJSON: String, modelDigest: String, priority: JobPriority, maxAttempts: Int = 3) {
        self.key = key
        self.kind = kind
        self.requestJSON = requestJSON
        self.modelDigest = modelDigest
        self.priority = priority
        self.maxAttempts = maxAttempts
    }
}

/// One row of `jobs` as read back. The table is the truth; this is a snapshot.
public struct JobRecord: Sendable, Equatable {
    public var id: UUID
    public var key: String
    public var kind: String
    public var requestJSON: String
    public var modelDigest: String
    public var priority: JobPriority
    public var state: JobState
    public var attempts: Int
    public var maxAttempts: Int
    public var step: Int
    public var steps: Int
    public var loss: Double?
    /// `hostname:pid` of the worker holding (or last holding) the lease.
    public var leaseOwner: String?
    public var leaseExpiresAt: Date?
    public var cancelRequested: Bool
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Why the job failed, or why its last attempt was lost.
    public var error: String?
    /// Key in `results` once the job is done.
    public var resultKey: String?
}

/// What `enqueue` did.
public enum EnqueueOutcome: Sendable, Equatable {
    /// A new job row was inserted.
    case created
    /// An identical job already existed (queued, running or done); nothing new
    /// was queued, though a queued job's priority may have been raised.
    case existing
    /// A failed or cancelled job with this key was queued again (same id, attempts reset).
    case requeued
}

/// What `cancel` did.
public enum CancelOutcome: Sendable, Equatable {
    /// The job was queued and is now cancelled; no worker will claim it.
    case cancelled
    /// The job is running; its owner sees `cancelRequested` at its next
    /// `progress` call (or notification) and then calls `acknowledgeCancel`.
    case requested
    /// The job had already finished in this state; nothing changed.
    case alreadyFinished(JobState)
    case notFound
}

/// Jobs per (state, priority), for metrics.
public struct JobCount: Sendable, Equatable {
    public var state: JobState
    public var priority: JobPriority
    public var count: Int

    public init(state: JobState, priority: JobPriority, count: Int) {
        self.state = state
        self.priority = priority
        self.count = count
    }
}

/// Which expired leases `reapExpiredLeases` acted on.
public struct ReapReport: Sendable, Equatable {
    public var requeued: [UUID] = []
    public var failed: [UUID] = []
    /// Running jobs whose cancellation was requested and whose worker vanished.
    public var cancelled: [UUID] = []

    public init(requeued: [UUID] = [], failed: [UUID] = [], cancelled: [UUID] = []) {
        self.requeued = requeued
        self.failed = failed
        self.cancelled = cancelled
    }
}
