import Foundation
import JobStore
import Logging
import Synchronization
import Visualization

/// This process's part in a cluster sharing one PostgreSQL: the store's connection
/// pool, the schema migration, one LISTEN fanned out to waiters, the workers (when
/// `jobs.workers` > 0) and a health probe that `/readyz` reads. PostgreSQL may be down
/// at start or go away later: everything here retries with backoff and nothing that was
/// accepted is lost (it is in the table).
final class Cluster: Sendable {
    let store: PostgresJobStore
    let hub = JobEventHub()
    let jobs: PostgresJobs
    let results: ClusterResults
    let worker: ClusterWorker?
    let database: DatabaseURL
    private let logger: Logger
    private let reachable = Atomic<Bool>(false)
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let metrics: ServerMetrics

    init(
        settings: ServerSettings, renderer: any Renderer, modelDigest: String, kinds: JobKinds, executor: ComputeExecutor,
        cache: ResultCache, metrics: ServerMetrics, logger: Logger
    ) throws {
        database = try DatabaseURL(settings.databaseURL)
        var configuration = database.configuration
        configuration.operationTimeout = .milliseconds(Int64(settings.databaseTimeoutSeconds * 1000))
        store = PostgresJobStore(configuration: configuration, logger: logger)
        let inProcess = JobQueue(
            executor: executor, cache: cache, metrics: metrics, workers: 1, maxQueued: settings.maxQueuedJobs,
            timeoutSeconds: settings.jobTimeoutSeconds, finishedBytes: settings.finishedJobBytes, logger: logger)
        jobs = PostgresJobs(
            store: store, hub: hub, settings: settings, modelDigest: modelDigest, kinds: kinds, inProcess: inProcess,
            renderer: renderer)
        results = ClusterResults(local: cache, remote: store.results)
        worker =
            settings.jobWorkers > 0
            ? ClusterWorker(
                store: store, hub: hub, renderer: renderer, modelDigest: modelDigest, kinds: kinds, executor: executor,
                local: cache, settings: settings, metrics: metrics, logger: logger)
            : nil
        self.logger = logger
        self.metrics = metrics
    }

    /// PostgreSQL answered the last probe (and the schema is in place).
    var isReachable: Bool { reachable.load(ordering: .relaxed) }

    /// Starts the pool, migrates (retrying until PostgreSQL answers), then the listener,
    /// the health probe and the workers.
    func start() {
        let store = self.store
        let pool = Task { await store.run() }
        let main = Task {
            var delay = 0.25
            while !Task.isCancelled {
                do {
                    let version = try await store.migrate()
                    logger.info("jobs: PostgreSQL \(database) schema version \(version)")
                    break
                } catch {
                    logger.warning("jobs: PostgreSQL \(database) not ready (\(error)); retrying in \(delay) s")
                    try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                    delay = min(delay * 2, 5)
                }
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.hub.run(store) }
                group.addTask { await self.probe() }
                if let worker = self.worker { group.addTask { await worker.run() } }
            }
        }
        tasks.withLock { $0 = [pool, main] }
    }

    private func probe() async {
        while !Task.isCancelled {
            do {
                let counts = try await jobs.counts()
                reachable.store(true, ordering: .relaxed)
                metrics.recordQueue(counts)
                if let worker { metrics.recordWorker(worker.owner, running: worker.runningJobs) }
            } catch {
                if reachable.exchange(false, ordering: .relaxed) { logger.warning("jobs: PostgreSQL unreachable: \(error)") }
            }
            try? await Task.sleep(for: .seconds(2))
        }
    }

    /// Takes no more jobs from the queue.
    func stopClaiming() { worker?.stopClaiming() }

    /// Stops claiming, gives running jobs `grace` seconds, hands back the unfinished ones,
    /// then closes the connections.
    func shutdown(grace: Double) async {
        await worker?.shutdown(deadline: grace)
        for task in tasks.withLock({ $0 }) { task.cancel() }
    }
}
