import ArgumentParser
import Foundation
import Logging
import Server

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run filter jobs for a cluster: claim them from PostgreSQL, compute, store the results. No HTTP server.",
        discussion: """
            Any number of workers and `serve` replicas on any machines share one PostgreSQL
            (--database-url, CONVLENS_DATABASE_URL or database.url). A worker claims only jobs for
            the model it has loaded (by the model file's SHA-256), renews its lease while a job
            runs, and stops a job at its next step when it is cancelled anywhere. A worker that
            dies leaves its job to expire (jobs.lease_seconds) and run elsewhere. SIGTERM/SIGINT:
            stop claiming, let running jobs finish within jobs.shutdown_grace_seconds, then hand
            the unfinished ones back to the queue.

            Example:
              convlens worker --database-url postgres://convlens@db:5432/convlens
            """)

    @Option(name: .customLong("database-url"), help: ArgumentHelp("PostgreSQL: postgres://user@host:port/db.", valueName: "url"))
    var databaseURL: String?

    @Option(name: .long, help: "Keras model (.h5/.keras) or ConvLens profile (.json). Default: the bundled EfficientNet-Lite0.")
    var model: String?

    @Option(name: .long, help: "oneDNN/OpenMP threads per job (compute.omp_threads; default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Jobs this process runs at once (jobs.workers; default 1).")
    var jobs: Int?

    @Option(name: .long, help: "Configuration file (.yaml or .json). Default: config/convlens.yaml if it exists.")
    var config: String?

    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = try log.logger(label: "convlens.worker")
        var loader = ServiceLoader(command: "worker")
        loader.set("model.path", model)
        loader.set("database.url", databaseURL)
        loader.set("jobs.backend", "postgres")
        loader.set("compute.omp_threads", threads)
        loader.set("jobs.workers", jobs)
        let (service, _, seconds) = try await loader.load(config: config, logger: logger)
        guard service.settings.jobWorkers > 0 else { throw ValidationError("--jobs must be at least 1 for a worker") }
        logger.info(
            "worker: model \(service.session.profile.name) loaded in \(String(format: "%.2f", seconds)) s; \(service.settings.jobWorkers) job(s) at a time"
        )
        try await ConvLensServer.runWorker(service: service, logger: logger)
    }
}
