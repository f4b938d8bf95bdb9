import ArgumentParser
import Configuration
import Foundation
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
    func load(config: String?) async throws -> (service: ConvLensService, configFile: String?, seconds: Double) {
        let defaultFile = "config/convlens.yaml"
        let configFile = config ?? (FileManager.default.fileExists(atPath: defaultFile) ? defaultFile : nil)
        do {
            let settings = try await ConvLensServer.settings(flags: flags, configFile: configFile)
            let began = Date()
            let service = try ConvLensService(settings: settings, executable: URL(fileURLWithPath: CommandLine.arguments[0]))
            return (service, configFile, Date().timeIntervalSince(began))
        } catch let error as ServerStartupError {
            printErr("convlens \(command): \(error)")
            throw ExitCode(2)
        }
    }
}
