import Foundation
import NIOCore
import PostgresNIO

/// A worker's view of its lease after a renewal.
public struct Lease: Sendable, Equatable {
    public var expiresAt: Date
    /// Someone asked to cancel the job: stop and call `acknowledgeCancel`.
    public var cancelRequested: Bool
}

/// The worker side. Every call here but `claim` requires the caller to hold the
/// job's lease (`owner` matches and the job is running), else `leaseLost`.
extension PostgresJobStore {
    /// Takes the most urgent queued job for one of `modelDigests` (nil: any
    /// model) of priority `atMost` or more urgent, marks it running under `owner`
    /// until `lease` from now, and counts an attempt. Returns nil when nothing is queued.
    public func claim(
        modelDigests: [String]?, owner: String, lease: Duration, atMost: JobPriority = .bulk
    ) async throws -> JobRecord? {
        let anyModel = modelDigests == nil
        let digests = modelDigests ?? []
        let ceiling = atMost.rawValue
        return try await rows(
            "claim",
            """
            WITH next AS (
                SELECT id FROM jobs
                WHERE state = 'queued' AND (\(anyModel) OR model_digest = ANY(\(digests))) AND priority <= \(ceiling)
                ORDER BY priority, queued_at
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            ), j AS (
                UPDATE jobs AS j SET state = 'running', attempts = j.attempts + 1, lease_owner = \(owner),
                    lease_interval = \(lease.milliseconds) * interval '1 millisecond',
                    lease_expires_at = now() + \(lease.milliseconds) * interval '1 millisecond',
                    started_at = now(), step = 0, steps = 0, loss = NULL
                FROM next WHERE j.id = next.id
                RETURNING j.*
            )
            SELECT \(unescaped: JobRow.columns), \(unescaped: notify) FROM j
            """
        ).first.map(JobRow.decode)
    }

    /// Extends the lease by the interval given at claim.
    @discardableResult
    public func renew(id: UUID, owner: String) async throws -> Lease {
        try await leaseRow(
            id,
            try await rows(
                "renew",
                """
                UPDATE jobs SET lease_expires_at = now() + lease_interval
                WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running'
                RETURNING lease_expires_at, cancel_requested
                """))
    }

    /// Records progress, renews the lease and tells the worker whether to stop.
    @discardableResult
    public func progress(id: UUID, owner: String, step: Int, steps: Int, loss: Double?) async throws -> Lease {
        try await leaseRow(
            id,
            try await rows(
                "progress",
                """
                WITH j AS (
                    UPDATE jobs SET step = \(step), steps = \(steps), loss = \(loss),
                        lease_expires_at = now() + lease_interval
                    WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running'
                    RETURNING *
                )
                SELECT j.lease_expires_at, j.cancel_requested, \(unescaped: notify) FROM j
                """))
    }

    /// Stores `result` and marks the job done, atomically: nobody sees a done
    /// job without its result. An existing result with the same key is kept
    /// (content-addressed: same key, same bytes).
    public func complete(id: UUID, owner: String, result: StoredResult) async throws {
        let metadata = result.metadataJSON
        try finished(
            id,
            try await rows(
                "complete",
                """
                WITH j AS (
                    UPDATE jobs SET state = 'done', finished_at = now(), lease_expires_at = NULL,
                        result_key = \(result.key), error = NULL, step = GREATEST(step, steps)
                    WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running'
                    RETURNING *
                ), stored AS (
                    INSERT INTO results (key, content_type, metadata, bytes)
                    SELECT \(result.key), \(result.contentType), \(metadata)::jsonb, \(result.bytes) FROM j
                    ON CONFLICT (key) DO NOTHING
                )
                SELECT j.id, \(unescaped: notify) FROM j
                """))
    }

    /// Marks the job failed for good with `reason`.
    public func fail(id: UUID, owner: String, reason: String) async throws {
        try finished(
            id,
            try await rows(
                "fail",
                """
                WITH j AS (
                    UPDATE jobs SET state = 'failed', finished_at = now(), lease_expires_at = NULL, error = \(reason)
                    WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running'
                    RETURNING *
                )
                SELECT j.id, \(unescaped: notify) FROM j
                """))
    }

    /// The owner gives a running job back unfinished (it is shutting down): the job is
    /// queued again at once for another worker, and this attempt is not counted.
    public func release(id: UUID, owner: String) async throws {
        try finished(
            id,
            try await rows(
                "release",
                """
                WITH j AS (
                    UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
                           attempts = greatest(attempts - 1, 0), step = 0
                    WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running'
                    RETURNING *
                )
                SELECT j.id, \(unescaped: notify) FROM j
                """))
    }

    /// The worker saw `cancelRequested` and stopped: the job becomes cancelled — unless a
    /// new request revived it meanwhile (`request` clears the flag), when it is queued
    /// again as `release` would, for a worker to run from the start.
    public func acknowledgeCancel(id: UUID, owner: String) async throws {
        try finished(
            id,
            try await rows(
                "acknowledge cancel",
                """
                WITH j AS (
                    UPDATE jobs SET
                        state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                        finished_at = CASE WHEN cancel_requested THEN now() END,
                        lease_owner = CASE WHEN cancel_requested THEN lease_owner END,
                        attempts = CASE WHEN cancel_requested THEN attempts ELSE greatest(attempts - 1, 0) END,
                        step = CASE WHEN cancel_requested THEN step ELSE 0 END,
                        lease_expires_at = NULL
                    WHERE id = \(id) AND lease_owner = \(owner) AND state = 'running'
                    RETURNING *
                )
                SELECT j.id, \(unescaped: notify) FROM j
                """))
    }

    private func leaseRow(_ id: UUID, _ rows: [PostgresRow]) throws -> Lease {
        guard let row = rows.first else { throw JobStoreError.leaseLost(id) }
        let r = row.makeRandomAccess()
        return Lease(
            expiresAt: try r["lease_expires_at"].decode(Date.self),
            cancelRequested: try r["cancel_requested"].decode(Bool.self)
        )
    }

    private func finished(_ id: UUID, _ rows: [PostgresRow]) throws {
        guard !rows.isEmpty else { throw JobStoreError.leaseLost(id) }
    }
}

extension Duration {
    /// Whole milliseconds (as a Double, which PostgreSQL multiplies with an interval).
    var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds / 1_000_000_000_000_000)
    }
}
