import Foundation
import Logging
import PostgresNIO

/// The schema as an append-only list of migrations. Never edit a shipped step:
/// add a new one, so every database converges on the same history.
enum Schema {
    /// Arbitrary constant all ConvLens processes use for pg_advisory_xact_lock,
    /// so concurrent starts run migrations one at a time.
    static let advisoryLockKey: Int64 = 0x436F_6E76_4C65_6E73  // "ConvLens"

    static let migrations: [[String]] = [
        // 1: jobs and results.
        [
            """
            CREATE TABLE jobs (
                id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                key              text NOT NULL UNIQUE,
                kind             text NOT NULL,
                request          jsonb NOT NULL,
                model_digest     text NOT NULL,
                priority         smallint NOT NULL,
                state            text NOT NULL DEFAULT 'queued'
                                 CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
                attempts         int NOT NULL DEFAULT 0,
                max_attempts     int NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
                step             int NOT NULL DEFAULT 0,
                steps            int NOT NULL DEFAULT 0,
                loss             double precision,
                lease_owner      text,
                lease_interval   interval,
                lease_expires_at timestamptz,
                cancel_requested boolean NOT NULL DEFAULT false,
                created_at       timestamptz NOT NULL DEFAULT now(),
                queued_at        timestamptz NOT NULL DEFAULT now(),
                started_at       timestamptz,
                finished_at      timestamptz,
                error            text,
                result_key       text
            )
            """,
            // The claim query walks this in order and stops at the first unlocked
            // row; partial, so finished jobs (the vast majority) cost nothing.
            "CREATE INDEX jobs_claim_idx ON jobs (priority, queued_at) WHERE state = 'queued'",
            // The reaper looks only at running jobs past their lease.
            "CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running'",
            """
            CREATE TABLE results (
                key          text PRIMARY KEY,
                content_type text NOT NULL,
                metadata     jsonb NOT NULL DEFAULT '{}',
                bytes        bytea NOT NULL,
                created_at   timestamptz NOT NULL DEFAULT now()
            )
            """,
        ],
        // 2: requests for jobs. Identical requests are one job; each is a row here, and
        // withdrawing the last one cancels the job (PostgresJobStore+Requests.swift).
        [
            """
            CREATE TABLE job_requests (
                id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                created_at   timestamptz NOT NULL DEFAULT now(),
                withdrawn_at timestamptz
            )
            """,
            "CREATE INDEX job_requests_waiting_idx ON job_requests (job_id) WHERE withdrawn_at IS NULL",
        ],
    ]

    static var latestVersion: Int { migrations.count }

    /// Brings the database to `latestVersion` in one transaction under the
    /// advisory lock: the first process to arrive migrates, the others wait and
    /// then find nothing to do. Refuses a database newer than this build.
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await connection.query("BEGIN", logger: logger)
        do {
            try await connection.query("SELECT pg_advisory_xact_lock(\(advisoryLockKey))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS convlens_schema_version (
                    version    int PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var current = 0
            for try await (version) in try await connection.query(
                "SELECT coalesce(max(version), 0)::int8 FROM convlens_schema_version", logger: logger
            ).decode(Int.self) {
                current = version
            }
            guard current <= latestVersion else {
                throw JobStoreError.schemaTooNew(found: current, known: latestVersion)
            }
            for version in (current + 1)..<(latestVersion + 1) {
                for statement in migrations[version - 1] {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO convlens_schema_version (version) VALUES (\(version))", logger: logger)
                logger.info("job store schema migrated", metadata: ["version": "\(version)"])
            }
            try await connection.query("COMMIT", logger: logger)
            return latestVersion
        } catch {
            // The connection goes back to the pool: it must not stay in a failed transaction.
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
