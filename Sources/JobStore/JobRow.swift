import Foundation
import PostgresNIO

/// The column list every job-returning statement uses, read back by name, so
/// statements and decoding cannot drift apart silently.
enum JobRow {
    static let columns = """
        j.id, j.key, j.kind, j.request::text AS request, j.model_digest, j.priority, j.state,
        j.attempts, j.max_attempts, j.step, j.steps, j.loss, j.lease_owner, j.lease_expires_at,
        j.cancel_requested, j.created_at, j.started_at, j.finished_at, j.error, j.result_key
        """

    /// NOTIFY from inside the statement that changed the row (alias `j`): it is
    /// delivered at commit, so a listener never hears about a change that rolled back.
    static func notify(channel: String) -> String {
        """
        pg_notify('\(channel)', json_build_object(
            'id', j.id, 'state', j.state, 'step', j.step, 'steps', j.steps,
            'cancel_requested', j.cancel_requested)::text) AS notified
        """
    }

    static func decode(_ row: PostgresRow) throws -> JobRecord {
        let r = row.makeRandomAccess()
        let priority = try r["priority"].decode(Int16.self)
        let state = try r["state"].decode(String.self)
        guard let jobPriority = JobPriority(rawValue: priority), let jobState = JobState(rawValue: state) else {
            throw JobStoreError.database("unknown priority \(priority) or state \(state)")
        }
        return JobRecord(
            id: try r["id"].decode(UUID.self),
            key: try r["key"].decode(String.self),
            kind: try r["kind"].decode(String.self),
            requestJSON: try r["request"].decode(String.self),
            modelDigest: try r["model_digest"].decode(String.self),
            priority: jobPriority,
            state: jobState,
            attempts: try r["attempts"].decode(Int.self),
            maxAttempts: try r["max_attempts"].decode(Int.self),
            step: try r["step"].decode(Int.self),
            steps: try r["steps"].decode(Int.self),
            loss: try r["loss"].decode(Double?.self),
            leaseOwner: try r["lease_owner"].decode(String?.self),
            leaseExpiresAt: try r["lease_expires_at"].decode(Date?.self),
            cancelRequested: try r["cancel_requested"].decode(Bool.self),
            createdAt: try r["created_at"].decode(Date.self),
            startedAt: try r["started_at"].decode(Date?.self),
            finishedAt: try r["finished_at"].decode(Date?.self),
            error: try r["error"].decode(String?.self),
            resultKey: try r["result_key"].decode(String?.self)
        )
    }
}
