import Configuration
import Foundation
import Server
import Testing
import Yams

/// The configuration hierarchy and the documented defaults.
@Suite struct ConfigTests {
    let documented = root.appendingPathComponent("config/convlens.yaml").path

    @Test func theConfigFileDocumentsEveryKeyWithItsTrueDefault() async throws {
        let fromFile = try await ConvLensServer.settings(flags: [:], configFile: documented, environment: [:])
        let builtIn = ServerSettings()
        // Every setting read from the documented file equals the built-in default.
        let a = Mirror(reflecting: fromFile).children.map { "\($0.label!)=\($0.value)" }
        let b = Mirror(reflecting: builtIn).children.map { "\($0.label!)=\($0.value)" }
        #expect(a == b)
        // And every key the server reads is in the file, with a comment above it.
        let text = try String(contentsOfFile: documented, encoding: .utf8)
        let yaml = try #require(try Yams.load(yaml: text) as? [String: [String: Any]])
        let keys = Set(yaml.flatMap { section, entries in entries.keys.map { "\(section).\($0)" } })
        let source = try String(contentsOf: root.appendingPathComponent("Sources/Server/ServerSettings.swift"), encoding: .utf8)
        let read = Set(source.matches(of: /forKey: "([a-z_.]+)"/).map { String($0.1) })
        #expect(read.count >= 20)
        #expect(keys == read, "documented but not read: \(keys.subtracting(read)); read but not documented: \(read.subtracting(keys))")
        let lines = text.components(separatedBy: "\n")
        for (i, line) in lines.enumerated()
        where line.hasPrefix("  ") && !line.hasPrefix("   ") && line.contains(":") && !line.contains("#") {
            #expect(lines[i - 1].trimmingCharacters(in: .whitespaces).hasPrefix("#"), "no comment above '\(line)'")
        }
    }

    @Test func flagsBeatEnvironmentBeatFileBeatDefaults() async throws {
        let dir = temporaryDirectory("config")
        let file = dir.appendingPathComponent("c.yaml")
        try "server:\n  port: 9001\n  host: 0.0.0.0\njobs:\n  max_queued: 7\n  wait_seconds: 2.5\n".write(
            to: file, atomically: true, encoding: .utf8)
        let env = ["CONVLENS_SERVER_PORT": "9002", "CONVLENS_JOBS_WORKERS": "3", "UNRELATED_SERVER_PORT": "1"]
        let s = try await ConvLensServer.settings(
            flags: ["server.port": .init(.int(9003), isSecret: false)],
            configFile: file.path, environment: env)
        #expect(s.port == 9003)  // flag
        #expect(s.jobWorkers == 3)  // environment
        #expect(s.host == "0.0.0.0")  // file
        #expect(s.maxQueuedJobs == 7)  // file
        #expect(s.jobWaitSeconds == 2.5)  // file
        #expect(s.computeThreads == 1)  // default
        let envOnly = try await ConvLensServer.settings(flags: [:], configFile: file.path, environment: env)
        #expect(envOnly.port == 9002)
        let json = dir.appendingPathComponent("c.json")
        try #"{"cache": {"dir": "", "memory_bytes": 1024}}"#.write(to: json, atomically: true, encoding: .utf8)
        let j = try await ConvLensServer.settings(flags: [:], configFile: json.path, environment: [:])
        #expect(j.cacheDir == "" && j.memoryCacheBytes == 1024)
    }

    @Test func badConfigurationStopsStartupWithTheKeyNamed() async throws {
        await #expect(throws: ServerStartupError.self) {
            _ = try await ConvLensServer.settings(flags: [:], configFile: "/nonexistent/convlens.yaml", environment: [:])
        }
        var s = ServerSettings()
        s.computeThreads = 0
        #expect(throws: ServerStartupError.self) { try s.validate() }
        do { try s.validate() } catch { #expect("\(error)".contains("compute.threads")) }
        s = ServerSettings()
        s.modelPath = "/nonexistent/model.h5"
        do {
            _ = try ConvLensService(settings: s, executable: root)
            Issue.record("a missing model must stop start-up")
        } catch {
            #expect("\(error)".contains("/nonexistent/model.h5"))
        }
    }
}
