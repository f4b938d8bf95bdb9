import Foundation
import PostgresNIO

/// One request for a job, as read back: identical requests share the job; each has its own
/// id, which its requester (and nobody else) holds.
public struct JobRequestRecord: Sendable, Equatable {
    public var id: UUID
    public var job: JobRecord
    /// Requests for the job not withdrawn (this one included unless it was).
    public var requesters: Int
    /// When this request was withdrawn; nil while it waits.
    public var withdrawnAt: Date?
}

/// What `withdraw` did.
public enum WithdrawOutcome: Sendable, Equatable {
    /// Other requests still wait: the job goes on for them.
    case withdrawn(others: Int)
    /// It was the last request: the job is cancelled (queued) or asked to stop (running).
    case cancelled(CancelOutcome)
    /// The request was withdrawn before, or its job had finished: nothing changed.
    case unchanged
    case notFound
}

/// Requests: each submission is a row of `job_requests`; the job stops when none is left.
extension PostgresJobStore {
    /// Queues `job` (or finds the identical one, as `enqueue` does) and adds a request for
    /// it. A job being stopped (its last request withdrawn, its worker not yet at its next
    /// step) is revived rather than joined as it dies; one cancelled meanwhile is queued
    /// again. Atomic against `withdraw`: both lock the job's row before they count requests.
    public func request(_ job: NewJob) async throws -> (request: JobRequestRecord, outcome: EnqueueOutcome) {
        for _ in 0..<3 {
            let (record, outcome) = try await enqueue(job)
            let added = try await rows(
                "request",
                """
                WITH j AS (
                    UPDATE jobs SET cancel_requested = false
                    WHERE id = \(record.id) AND state IN ('queued', 'running', 'done')
                    RETURNING id
                )
                INSERT INTO job_requests (job_id) SELECT id FROM j RETURNING id
                """)
            if let row = added.first, let request = try await request(id: try row.decode(UUID.self)) {
                return (request, outcome)
            }
            // The job was cancelled or failed between the two statements: queue it again.
        }
        throw JobStoreError.database("job \(job.key) kept finishing before a request could be added")
    }

    /// The request `id` with its job, or nil.
    public func request(id: UUID) async throws -> JobRequestRecord? {
        guard
            let row = try await rows(
                "request status",
                """
                SELECT \(unescaped: JobRow.columns), r.id AS request_id, r.withdrawn_at,
                    (SELECT count(*) FROM job_requests q WHERE q.job_id = j.id AND q.withdrawn_at IS NULL) AS requesters
                FROM job_requests AS r JOIN jobs AS j ON j.id = r.job_id
                WHERE r.id = \(id)
                """
            ).first
        else { return nil }
        let r = row.makeRandomAccess()
        return JobRequestRecord(
            id: try r["request_id"].decode(UUID.self), job: try JobRow.decode(row),
            requesters: try r["requesters"].decode(Int.self), withdrawnAt: try r["withdrawn_at"].decode(Date?.self))
    }

    /// Withdraws the request `id` of an unfinished job; cancels the job when no other
    /// request waits for it (as `cancel` does).
    public func withdraw(request id: UUID) async throws -> WithdrawOutcome {
        // Every statement's rows are collected before the next: leaving a row sequence
        // unfinished inside a transaction can keep the connection waiting.
        try await transaction("withdraw") { [self] connection, logger in
            let withdrawn = try await connection.query(
                """
                UPDATE job_requests AS r SET withdrawn_at = now() FROM jobs AS j
                WHERE r.id = \(id) AND r.withdrawn_at IS NULL AND j.id = r.job_id AND j.state IN ('queued', 'running')
                RETURNING r.job_id
                """, logger: logger
            ).collect()
            guard let job = try withdrawn.first?.decode(UUID.self) else {
                let exists = try await connection.query("SELECT 1 FROM job_requests WHERE id = \(id)", logger: logger).collect()
                return exists.isEmpty ? .notFound : .unchanged
            }
            // The job's row lock orders this count after any `request` adding to the job.
            _ = try await connection.query("SELECT id FROM jobs WHERE id = \(job) FOR UPDATE", logger: logger).collect()
            let counted = try await connection.query(
                "SELECT count(*) FROM job_requests WHERE job_id = \(job) AND withdrawn_at IS NULL", logger: logger
            ).collect()
            let others = try counted.first?.decode(Int.self) ?? 0
            guard others == 0 else { return .withdrawn(others: others) }
            let cancelled = try await connection.query(self.cancelStatement(job), logger: logger).collect()
            guard let state = try cancelled.first?.decode((String, String).self) else { return .unchanged }
            return .cancelled(state.0 == JobState.cancelled.rawValue ? .cancelled : .requested)
        }
    }
}
