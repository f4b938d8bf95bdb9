import Foundation
import PostgresNIO

/// The producer side: enqueue, look up, cancel, count, reap.
extension PostgresJobStore {
    /// Queues `job` unless an identical one (same key) exists. Returns the job
    /// that now stands for the request and what happened. Re-enqueueing a
    /// failed/cancelled key queues it again under the same id; re-enqueueing a
    /// queued key at a more urgent priority raises its priority.
    public func enqueue(_ job: NewJob) async throws -> (job: JobRecord, outcome: EnqueueOutcome) {
        let priority = job.priority.rawValue
        let maxAttempts = job.maxAttempts
        // ON CONFLICT DO NOTHING: of concurrent identical inserts, one wins and
        // the others see its committed row below (READ COMMITTED re-reads).
        let inserted = try await rows(
            "enqueue",
            """
            WITH j AS (
                INSERT INTO jobs (key, kind, request, model_digest, priority, max_attempts)
                VALUES (\(job.key), \(job.kind), \(job.requestJSON)::jsonb, \(job.modelDigest), \(priority), \(maxAttempts))
                ON CONFLICT (key) DO NOTHING
                RETURNING *
            )
            SELECT \(unescaped: JobRow.columns), \(unescaped: notify) FROM j
            """)
        if let row = inserted.first { return (try JobRow.decode(row), .created) }

        // The row lock makes concurrent re-enqueues of a failed job requeue it once.
        let requeued = try await rows(
            "enqueue",
            """
            WITH j AS (
                UPDATE jobs SET state = 'queued', kind = \(job.kind), request = \(job.requestJSON)::jsonb,
                    model_digest = \(job.modelDigest), priority = \(priority), max_attempts = \(maxAttempts),
                    attempts = 0, step = 0, steps = 0, loss = NULL, lease_owner = NULL, lease_interval = NULL,
                    lease_expires_at = NULL, cancel_requested = false, queued_at = now(), started_at = NULL,
                    finished_at = NULL, error = NULL, result_key = NULL
                WHERE key = \(job.key) AND state IN ('failed', 'cancelled')
                RETURNING *
            )
            SELECT \(unescaped: JobRow.columns), \(unescaped: notify) FROM j
            """)
        if let row = requeued.first { return (try JobRow.decode(row), .requeued) }

        // Only write when it changes something: duplicate enqueues are the common case.
        let raised = try await rows(
            "enqueue",
            """
            UPDATE jobs AS j SET priority = \(priority)
            WHERE key = \(job.key) AND state = 'queued' AND priority > \(priority)
            RETURNING \(unescaped: JobRow.columns)
            """)
        if let row = raised.first { return (try JobRow.decode(row), .existing) }
        guard let existing = try await status(key: job.key) else {
            throw JobStoreError.database("job \(job.key) neither inserted nor found")
        }
        return (existing, .existing)
    }

    public func status(id: UUID) async throws -> JobRecord? {
        try await rows("status", "SELECT \(unescaped: JobRow.columns) FROM jobs AS j WHERE j.id = \(id)")
            .first.map(JobRow.decode)
    }

    /// The job standing for a content address, if any.
    public func status(key: String) async throws -> JobRecord? {
        try await rows("status", "SELECT \(unescaped: JobRow.columns) FROM jobs AS j WHERE j.key = \(key)")
            .first.map(JobRow.decode)
    }

    /// A queued job is cancelled at once; a running one is flagged and its
    /// worker stops at its next step (see `CancelOutcome`).
    public func cancel(id: UUID) async throws -> CancelOutcome {
        let changed = try await rows("cancel", cancelStatement(id))
        if let row = changed.first {
            return try row.decode(String.self) == JobState.cancelled.rawValue ? .cancelled : .requested
        }
        guard let job = try await status(id: id) else { return .notFound }
        return .alreadyFinished(job.state)
    }

    /// Cancels a queued job, flags a running one; answers the state it left (one row, or none
    /// for a finished or unknown job).
    func cancelStatement(_ id: UUID) -> PostgresQuery {
        """
        WITH j AS (
            UPDATE jobs SET
                state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
                finished_at = CASE WHEN state = 'queued' THEN now() ELSE finished_at END,
                cancel_requested = true
            WHERE id = \(id) AND state IN ('queued', 'running')
            RETURNING *
        )
        SELECT j.state, \(unescaped: notify) FROM j
        """
    }

    /// Sends running jobs whose lease has expired back to the queue, or fails
    /// them once they used up their attempts (or cancels them if cancellation
    /// was requested). Any process may call this, concurrently: SKIP LOCKED makes
    /// each expired job handled by exactly one reaper.
    public func reapExpiredLeases() async throws -> ReapReport {
        let reaped = try await rows(
            "reap",
            """
            WITH expired AS (
                SELECT id FROM jobs
                WHERE state = 'running' AND lease_expires_at < now()
                FOR UPDATE SKIP LOCKED
            ), j AS (
                UPDATE jobs AS j SET
                    state = CASE WHEN j.cancel_requested THEN 'cancelled'
                                 WHEN j.attempts >= j.max_attempts THEN 'failed'
                                 ELSE 'queued' END,
                    error = CASE WHEN j.cancel_requested THEN 'cancelled; its worker vanished'
                                 ELSE format('lease of %s expired (attempt %s of %s)%s', j.lease_owner, j.attempts,
                                             j.max_attempts, CASE WHEN j.attempts >= j.max_attempts
                                                                  THEN '; giving up' ELSE '' END) END,
                    finished_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN now() END,
                    lease_owner = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN j.lease_owner END,
                    lease_expires_at = NULL
                FROM expired WHERE j.id = expired.id
                RETURNING j.*
            )
            SELECT j.id, j.state, \(unescaped: notify) FROM j
            """)
        var report = ReapReport()
        for row in reaped {
            let (id, state) = try row.decode((UUID, String).self)
            switch JobState(rawValue: state) {
            case .queued: report.requeued.append(id)
            case .failed: report.failed.append(id)
            default: report.cancelled.append(id)
            }
        }
        return report
    }

    /// Jobs waiting to be claimed: one count over the claim index, cheap enough to ask before
    /// every enqueue (where `counts` would scan every finished row too).
    public func queuedCount() async throws -> Int {
        let rows = try await rows("queued count", "SELECT count(*) FROM jobs WHERE state = 'queued'")
        return try rows.first?.decode(Int.self) ?? 0
    }

    /// Jobs per state and priority (all of them, finished ones included), for metrics.
    public func counts() async throws -> [JobCount] {
        try await rows("counts", "SELECT state, priority, count(*) FROM jobs GROUP BY state, priority ORDER BY 1, 2")
            .map { row in
                let (state, priority, count) = try row.decode((String, Int16, Int).self)
                guard let state = JobState(rawValue: state), let priority = JobPriority(rawValue: priority) else {
                    throw JobStoreError.database("unknown state \(state) or priority \(priority)")
                }
                return JobCount(state: state, priority: priority, count: count)
            }
    }
}
