/// # JobStore: the cluster-wide job queue and result store in PostgreSQL
///
/// Many ConvLens processes on many machines share one PostgreSQL. Each process
/// makes one `PostgresJobStore`, runs it, and uses it both as a producer (HTTP
/// routes enqueue, poll, cancel) and as a worker (claim, progress, complete).
///
/// ```swift
/// let store = PostgresJobStore(configuration: .init(host: "db", username: "convlens", database: "convlens"))
/// Task { await store.run() }                    // owns the connection pool; cancel to shut down
/// try await store.migrate()                     // idempotent; safe when many processes start at once
///
/// // Producer: identical keys anywhere in the cluster are one job; each request for it is
/// // a row of its own, and the job is cancelled when the last request is withdrawn.
/// let (request, outcome) = try await store.request(NewJob(key: digest, kind: "filter", requestJSON: json,
///                                                        modelDigest: model, priority: .interactive))
/// _ = try await store.withdraw(request: request.id)
///
/// // Worker: claim, report progress (which renews the lease), finish.
/// let owner = PostgresJobStore.processOwner     // "hostname:pid"
/// if let job = try await store.claim(modelDigests: [model], owner: owner, lease: .seconds(30)) {
///     for step in 1...steps {
///         if try await store.progress(id: job.id, owner: owner, step: step, steps: steps, loss: l).cancelRequested {
///             try await store.acknowledgeCancel(id: job.id, owner: owner); break
///         }
///     }
///     try await store.complete(id: job.id, owner: owner, result: StoredResult(key: k, contentType: "image/png", bytes: png))
/// }
///
/// // Anyone: watch changes (hints; re-read `status` for the truth), reap crashed workers' jobs.
/// for await event in store.listen() { ... }
/// _ = try await store.reapExpiredLeases()       // call periodically from every process; it is idempotent
/// ```
///
/// Guarantees and choices:
/// - The `jobs` table is the only truth. Notifications (channel `convlens_jobs`,
///   JSON payload `{id, state, step, steps, cancel_requested}`) are sent in the same
///   statement as every change and delivered on commit, but can be missed during
///   an outage; `listen()` then yields `.listening` again to say "re-read".
/// - `claim` uses `FOR UPDATE SKIP LOCKED`: concurrent claimers never get the same
///   job and never wait on each other. Order: priority (interactive, grid, bulk),
///   then time queued. Each claim counts one attempt.
/// - Worker calls (`renew`, `progress`, `complete`, `fail`, `acknowledgeCancel`) only
///   act while the job is `running` under the caller's `owner`; otherwise they throw
///   `JobStoreError.leaseLost` and the worker must drop the job. An expired lease
///   still counts as held until a reaper has acted on it. The owner name is the
///   fencing token: a process running several workers at once should give each
///   its own (`processOwner + ":" + slot`), or a stale worker whose job was
///   reaped and re-claimed by a sibling could report on the sibling's attempt.
/// - `progress` also renews the lease (by the interval given at claim): a worker
///   that makes progress is alive, and it saves a round trip per step.
/// - A lease that expires sends the job back to `queued`; once its attempts reach
///   its `maxAttempts` (set per job at enqueue) it becomes `failed` with the reason.
///   `fail` is final (a deterministic error does not get better by retrying).
/// - `complete` writes the result row and marks the job done in one statement.
/// - Every call is bounded by `operationTimeout`; while PostgreSQL is unreachable
///   calls throw `JobStoreError.unavailable` and the pool reconnects on its own.
import Foundation
import Logging
import NIOCore
import PostgresNIO

public final class PostgresJobStore: Sendable {
    public let configuration: JobStoreConfiguration
    /// Results share this store's connection pool.
    public let results: PostgresResultStore
    let client: PostgresClient
    let logger: Logger

    public init(configuration: JobStoreConfiguration, logger: Logger = Logger(label: "convlens.jobstore")) {
        precondition(
            configuration.channel.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") },
            "the NOTIFY channel is spliced into SQL: lowercase letters, digits and _ only"
        )
        self.configuration = configuration
        self.logger = logger
        var options = PostgresClient.Configuration.Options()
        options.connectTimeout = configuration.connectTimeout
        options.maximumConnections = configuration.maximumConnections
        var clientConfiguration = PostgresClient.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: .disable
        )
        clientConfiguration.options = options
        self.client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
        self.results = PostgresResultStore(client: client, configuration: configuration, logger: logger)
    }

    /// Runs the connection pool until the calling task is cancelled (or, under
    /// ServiceLifecycle, until graceful shutdown). Calls made without it running time out.
    public func run() async {
        await client.run()
    }

    /// `hostname:pid`, the lease owner name of this process.
    public static var processOwner: String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// Creates or upgrades the schema; returns its version. Safe to call from
    /// every process at start.
    @discardableResult
    public func migrate() async throws -> Int {
        let client = self.client
        let logger = self.logger
        return try await withDeadline(configuration.operationTimeout * 6, "migrate") {
            try await client.withConnection { connection in
                try await Schema.migrate(connection, logger: logger)
            }
        }
    }

    /// Runs one statement within the operation timeout and collects its rows.
    /// Single statements are atomic, so no call here needs an explicit transaction.
    func rows(_ what: String, _ query: PostgresQuery) async throws -> [PostgresRow] {
        let client = self.client
        let logger = self.logger
        return try await withDeadline(configuration.operationTimeout, what) {
            try await client.query(query, logger: logger).collect()
        }
    }

    /// Runs `body` in one transaction on one connection, within the operation timeout
    /// (READ COMMITTED: each statement sees what committed before it began).
    func transaction<T: Sendable>(
        _ what: String, _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        let client = self.client
        let logger = self.logger
        return try await withDeadline(configuration.operationTimeout, what) {
            try await client.withTransaction(logger: logger) { connection in try await body(connection, logger) }
        }
    }

    var notify: String { JobRow.notify(channel: configuration.channel) }
}
