import ArgumentParser
import Configuration
import Foundation
import Logging
import Server

/// What `serve` and `gallery` share: settings from their flags, `CONVLENS_*` variables and
/// the config file (`--config`, or config/convlens.yaml when it exists), and the model
/// loaded once. A start-up problem is printed as `convlens <command>: …` with exit code 2.
struct ServiceLoader {
    let command: String
    var flags: [String: ConfigValue] = [:]

    init(command: String) { self.command = command }

    mutating func set(_ key: String, _ value: String?) {
        if let value { flags[key] = ConfigValue(.string(value), isSecret: false) }
    }

    mutating func set(_ key: String, _ value: Int?) {
        if let value { flags[key] = ConfigValue(.int(value), isSecret: false) }
    }

    /// The service, the config file read (if any) and the seconds the model took to load.
    func load(config: String?, logger: Logger = Logger(label: "convlens")) async throws
        -> (service: ConvLensService, configFile: String?, seconds: Double)
    {
        let defaultFile = "config/convlens.yaml"
        let configFile = config ?? (FileManager.default.fileExists(atPath: defaultFile) ? defaultFile : nil)
        do {
            let settings = try await ConvLensServer.settings(flags: flags, configFile: configFile)
            let began = Date()
            let service = try ConvLensService(
                settings: settings, executable: URL(fileURLWithPath: CommandLine.arguments[0]), logger: logger)
            return (service, configFile, Date().timeIntervalSince(began))
        } catch let error as ServerStartupError {
            printErr("convlens \(command): \(error)")
            throw ExitCode(2)
        }
    }
}

/// `--log-level` for the commands that run a service.
struct LogOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func logger(label: String) throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
