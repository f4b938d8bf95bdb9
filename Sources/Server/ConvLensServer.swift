import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle

/// Builds and runs the HTTP server around a `ConvLensService`.
public enum ConvLensServer {
    /// The configuration hierarchy: explicit values (command-line flags) first, then
    /// `CONVLENS_*` environment variables, then the config file, then the defaults.
    public static func settings(flags: [String: ConfigValue], configFile: String?,
                                environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> ServerSettings {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (k, v) in flags { values[AbsoluteConfigKey(k.split(separator: ".").map(String.init))] = v }
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "command line", values: values),
            EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: "convlens"),
        ]
        if let configFile {
            guard FileManager.default.fileExists(atPath: configFile) else {
                throw ServerStartupError("config file not found: \(configFile)")
            }
            do {
                if configFile.hasSuffix(".json") {
                    providers.append(try await FileProvider<JSONSnapshot>(filePath: .init(configFile)))
                } else {
                    providers.append(try await FileProvider<YAMLSnapshot>(filePath: .init(configFile)))
                }
            } catch {
                throw ServerStartupError("cannot read the config file \(configFile): \(error)")
            }
        }
        return ServerSettings(reader: ConfigReader(providers: providers))
    }

    /// The application: routes, middleware (request log → JSON errors → static gallery),
    /// and the services that run beside the HTTP server (job drain at shutdown, gallery pre-rendering).
    public static func application(service: ConvLensService, logger: Logger,
                                   registered: (@Sendable ([String]) -> Void)? = nil,
                                   onRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        let router = Router()
        router.add(middleware: RequestLogMiddleware(metrics: service.metrics))
        router.add(middleware: JSONErrorMiddleware())
        router.add(middleware: FileMiddleware(service.settings.publicDir, searchForIndexHtml: true, logger: logger))
        let endpoints = Routes(service: service).register(on: router)
        registered?(endpoints.map { "\($0.method) \($0.path)" })
        var configuration = ApplicationConfiguration(
            address: .hostname(service.settings.host, port: service.settings.port),
            serverName: "ConvLens")
        configuration.backlog = 256
        return Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(Int64(service.settings.idleTimeoutSeconds)))),
            configuration: configuration,
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }
}

extension ConvLensServer {
    /// Runs the server until SIGTERM/SIGINT, then shuts down in this order: readiness
    /// goes 503 and the queue stops taking jobs (queued ones are recorded as cancelled);
    /// the HTTP server stops accepting and finishes the requests in flight, while running
    /// jobs get `jobs.shutdown_grace_seconds` before they are cancelled at their next step
    /// (their event streams end with them); then the compute threads stop. Finished results
    /// are already on disk: the cache directory is its own index, nothing is left to flush.
    public static func run(service: ConvLensService, logger: Logger,
                           onRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }) async throws {
        let app = application(service: service, logger: logger, onRunning: onRunning)
        // A service group shuts its services down in reverse order: the drain starts
        // first, so the HTTP server's wait for in-flight requests (an event stream
        // follows a job) is bounded by the jobs' grace period.
        let group = ServiceGroup(services: [app, ShutdownService(service: service, logger: logger)],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        await service.drain()
        logger.info("stopped; results are on disk at \(service.cache.directory?.path ?? "(memory only)")")
    }
}

/// Runs beside the HTTP server: at start it may queue the gallery pre-rendering; on
/// SIGTERM/SIGINT it starts the drain and returns, so the HTTP server shuts down next.
struct ShutdownService: Service {
    let service: ConvLensService
    let logger: Logger

    func run() async throws {
        if service.settings.prerenderGallery {
            let n = await service.prerenderGallery(logger: logger)
            logger.info("gallery: queued \(n) filter grid(s) at bulk priority")
        }
        try? await gracefulShutdown()
        let counts = (try? await service.jobs.counts()) ?? JobCounts(queued: 0, running: 0)
        logger.info("shutting down: \(counts.running) running and \(counts.queued) queued job(s); running jobs get up to \(service.settings.shutdownGraceSeconds) s")
        service.beginDrain()
    }
}

extension ConvLensServer {
    /// Runs a worker (no HTTP server) until SIGTERM/SIGINT, then drains: stop claiming,
    /// let running jobs finish within the grace period, hand the rest back to the queue.
    public static func runWorker(service: ConvLensService, logger: Logger) async throws {
        let group = ServiceGroup(services: [WorkerShutdown(service: service, logger: logger)],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        await service.drain()
        logger.info("worker stopped")
    }
}

/// Waits for SIGTERM/SIGINT, then starts the drain.
struct WorkerShutdown: Service {
    let service: ConvLensService
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("worker shutting down: running jobs get up to \(service.settings.shutdownGraceSeconds) s, then go back to the queue")
        service.beginDrain()
    }
}
