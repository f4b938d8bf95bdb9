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
            services: [ShutdownService(service: service, logger: logger)],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }
}

/// Runs beside the HTTP server. At start it may queue the gallery pre-rendering; on
/// SIGTERM/SIGINT it marks the server not ready, lets running jobs finish within the
/// deadline (others are recorded as cancelled), and stops the compute threads.
struct ShutdownService: Service {
    let service: ConvLensService
    let logger: Logger
    var deadlineSeconds: Double { service.settings.shutdownGraceSeconds }

    func run() async throws {
        if service.settings.prerenderGallery {
            let n = service.prerenderGallery(logger: logger)
            logger.info("gallery: queued \(n) filter grid(s) at bulk priority")
        }
        try? await gracefulShutdown()
        service.ready.store(false, ordering: .relaxed)
        let counts = service.jobs.counts
        logger.info("shutting down: \(counts.running) running and \(counts.queued) queued job(s); waiting up to \(Int(deadlineSeconds)) s")
        await service.jobs.shutdown(deadline: deadlineSeconds)
        service.executor.shutdown()
        logger.info("job queue drained; cache is on disk at \(service.cache.directory?.path ?? "(memory only)")")
    }
}
