import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

/// `convlens serve` as a child process with a small open-file limit and a connection limit
/// above it, so accept() itself fails with EMFILE: the server must keep running, stop
/// taking connections while it has no descriptors, and take them again once clients leave.
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

    @Test(.timeLimit(.minutes(5))) func acceptFailingWithEMFILEDoesNotStopTheServer() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // exec: the shell becomes the server, with the lowered limit.
        process.arguments = ["-c", "ulimit -n 128 && exec \"$0\" serve --port 0 --cache-dir \"$1\"",
                             Self.executable.path, scratchURL("emfile").path]
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

        // 200 connections: more than the server has descriptors for (128 in all, some in
        // use), fewer than its accepted ones plus its listen backlog (256), so every
        // connect() completes and the rest wait in the backlog.
        let held = try (0..<200).map { _ in try RawConnection(port: p) }
        try await Task.sleep(for: .seconds(1))
        // The last one waits in the backlog: the server has no descriptor to accept it with.
        let last = held[held.count - 1]
        last.send(healthz)
        let early = await offPool { last.receive(timeout: 1.5) }
        #expect(early == .timedOut, "the server answered a connection it should have had no descriptor for")
        #expect(process.isRunning, "the server stopped when accept() failed: \(log.text.suffix(2000))")

        // Clients leave; the server accepts again and answers the connection that waited.
        for c in held.dropLast() { c.shutdownWrite() }
        let (answer, _) = await offPool { last.readToEnd(timeout: 120) }
        #expect(RawResponse(answer)?.status == 200, "no answer once descriptors were free: \(String(decoding: answer.prefix(200), as: UTF8.self))")
        #expect(process.isRunning, "the server stopped: \(log.text.suffix(3000))")
        withExtendedLifetime(held) {}
        #expect(try await rawExchange(port: p, healthz).status == 200)

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
