import Foundation

/// A running `convlens serve` (or another subcommand: `worker`); its log (stderr) is collected as it comes.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var log = ""
    private var ended: ContinuousClock.Instant?

    init(_ args: [String], command: String = "serve", environment: [String: String] = [:]) throws {
        process.executableURL = executable
        process.arguments = [command] + args
        process.currentDirectoryURL = root
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            guard let self, !d.isEmpty else { return }
            self.lock.withLock { self.log += String(decoding: d, as: UTF8.self) }
        }
        // Noted on Foundation's thread as the process ends: a poll from a test task can
        // resume seconds late when a full run keeps the cooperative pool busy.
        process.terminationHandler = { [weak self] _ in
            guard let self else { return }
            let now = ContinuousClock.now
            self.lock.withLock { self.ended = now }
        }
        try process.run()
    }

    var output: String { lock.withLock { log } }

    /// When the process ended (nil while it runs).
    var endedAt: ContinuousClock.Instant? { lock.withLock { ended } }

    /// The port from the "serving on http://127.0.0.1:PORT/" line.
    func waitForPort(timeout: Double = 60) async throws -> Int {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if let m = output.firstMatch(of: /serving on http:\/\/127\.0\.0\.1:(\d+)\//) { return Int(m.1)! }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CancellationError()
    }

    func waitForExit(timeout: Double) async throws -> Int32? {
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < end { try await Task.sleep(for: .milliseconds(100)) }
        return process.isRunning ? nil : process.terminationStatus
    }
}
