import ArgumentParser
import Foundation
import Logging
import Server

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTP service: heatmaps, activations, filters and the gallery at http://127.0.0.1:8080/.",
        discussion: """
            The model is loaded once. Settings come from, in order of precedence: these flags,
            CONVLENS_* environment variables (key server.port → CONVLENS_SERVER_PORT), the config
            file (--config, default config/convlens.yaml when it exists), then built-in defaults.
            config/convlens.yaml documents every key. SIGTERM/SIGINT shut down gracefully.

            Examples:
              convlens serve
              curl -F image=@cat.jpg localhost:8080/heatmap > overlay.png
              curl localhost:8080/filters/block3a_expand_activation/7 > f.png
            """)

    @Option(name: .long, help: "Keras model (.h5/.keras) or ConvLens profile (.json). Default: the bundled EfficientNet-Lite0.")
    var model: String?

    @Option(name: .long, help: "Address to listen on (default 127.0.0.1).")
    var host: String?

    @Option(name: .long, help: "Port to listen on (default 8080; 0 picks a free one).")
    var port: Int?

    @Option(name: .long, help: "Configuration file (.yaml or .json). Default: config/convlens.yaml if it exists.")
    var config: String?

    @Option(name: .long, help: "Directory of the result cache (empty: memory only).")
    var cacheDir: String?

    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "PostgreSQL shared by a cluster of replicas and workers (postgres://user@host:port/db); implies jobs.backend: postgres.",
            valueName: "url"))
    var databaseURL: String?

    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = try log.logger(label: "convlens")
        var loader = ServiceLoader(command: "serve")
        loader.set("model.path", model)
        loader.set("server.host", host)
        loader.set("server.port", port)
        loader.set("cache.dir", cacheDir)
        loader.set("database.url", databaseURL)
        if databaseURL != nil { loader.set("jobs.backend", "postgres") }
        let (service, configFile, seconds) = try await loader.load(config: config, logger: logger)
        logger.info(
            "model \(service.session.profile.name) (\(service.session.keras.layers.count) layers) loaded in \(String(format: "%.2f", seconds)) s from \(service.session.profile.modelURL.path)\(configFile.map { "; config \($0)" } ?? "")"
        )
        let runningLogger = logger
        try await ConvLensServer.run(
            service: service, logger: logger,
            onRunning: { port in
                let logger = runningLogger
                logger.info("serving on http://\(service.settings.host):\(port)/")
            })
    }
}
