import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `convlens serve` as a child process with a small open-file limit and a connection limit
/// far above it. Before the server fitted its limit under `ulimit -n`, this flood ran it
/// out of descriptors: accept() failed with EMFILE and, on a loaded machine, libdispatch
/// stopped the process with SIGILL (its thread pool could not open /proc). Now the limit
/// is lowered at start, extra connections get 503, and the server lives on.
@Suite struct DescriptorExhaustionTests {
    /// The built executable, next to the test bundle (as the CLI tests find it).
    static let executable: URL = {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("convlens")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return root.appendingPathComponent(".build/debug/convlens")
    }()

    @Test(.timeLimit(.minutes(5))) func aFloodUnderASmallOpenFileLimitIsRefusedNotFatal() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // exec: the shell becomes the server, with the lowered limit.
        process.arguments = [
            "-c", "ulimit -n 128 && exec \"$0\" serve --port 0 --cache-dir \"$1\"",
            Self.executable.path, scratchURL("emfile").path,
        ]
        process.currentDirectoryURL = root
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["CONVLENS_SERVER_MAX_CONNECTIONS": "100000", "CONVLENS_JOBS_SHUTDOWN_GRACE_SECONDS": "0"]) { $1 }
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        let log = LogBuffer()
        pipe.fileHandleForReading.readabilityHandler = { h in log.append(h.availableData) }
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        var port: Int?
        for _ in 0..<3000 where port == nil && process.isRunning {
            if let m = log.text.firstMatch(of: /serving on http:\/\/127\.0\.0\.1:(\d+)\//) { port = Int(m.1) }
            try await Task.sleep(for: .milliseconds(100))
        }
        let p = try #require(port, "the server did not start: \(log.text.suffix(2000))")
        let healthz = Data("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
        #expect(try await rawExchange(port: p, healthz).status == 200)

        #expect(log.text.contains("server.max_connections 100000 lowered to 64"), "\(log.text.suffix(2000))")

        // 200 connections, far more than 128 descriptors allow: the first 64 are held, each
        // further one is answered 503 and closed; the server never runs out.
        let held = try (0..<200).map { _ in try RawConnection(port: p) }
        let answers = await offPool { held.suffix(100).map { $0.readToEnd(timeout: 120) } }
        let refused = answers.filter { RawResponse($0.data)?.status == 503 }.count
        #expect(refused == 100, "\(refused) of the last 100 connections got 503")
        #expect(process.isRunning, "the server stopped: \(log.text.suffix(3000))")

        // Clients leave; the server serves again.
        for c in held { c.shutdownWrite() }
        var healthy = false
        for _ in 0..<600 where !healthy && process.isRunning {
            healthy = (try? await rawExchange(port: p, healthz, timeout: 120))?.status == 200
            if !healthy { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(healthy, "no answer after the flood: \(log.text.suffix(2000))")
        #expect(process.isRunning, "the server stopped: \(log.text.suffix(3000))")
        withExtendedLifetime(held) {}
        #expect(!log.text.contains("Waiting on child channel"), "the accept loop ended: \(log.text.suffix(2000))")
        #expect(!log.text.contains("could not guard the accept loop"), "\(log.text.suffix(2000))")

        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<1200 where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!process.isRunning)
        #expect(process.terminationStatus == 0, "\(log.text.suffix(2000))")
    }
}

final class LogBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ d: Data) { lock.withLock { data.append(d) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
