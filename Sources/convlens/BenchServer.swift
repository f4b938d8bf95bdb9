import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `convlens serve` on the bundled model and a free loopback port, as a child of the
/// bench: the heatmap line times the request a user makes, through the real server.
final class ServeChild {
    let process = Process()
    let port: Int
    private let log = LockedText()
    private let cacheDir: URL

    init(threads: Int) throws {
        cacheDir = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-bench-\(getpid())")
        process.executableURL = URL(fileURLWithPath: try thisExecutable())
        process.arguments = ["serve", "--port", "0", "--cache-dir", cacheDir.path]
        process.environment = ProcessInfo.processInfo.environment.merging(["CONVLENS_COMPUTE_THREADS": String(threads)]) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let log = self.log
        pipe.fileHandleForReading.readabilityHandler = { handle in log.append(handle.availableData) }
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        var found: Int?
        while found == nil, Date() < deadline, process.isRunning {
            if let m = log.text.firstMatch(of: /serving on http:\/\/127\.0\.0\.1:(\d+)\//) { found = Int(m.1) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        guard let found else {
            if process.isRunning { process.terminate() }
            throw CLIError("convlens serve did not start within 120 s:\n\(log.text.suffix(2000))")
        }
        port = found
    }

    /// The server's peak resident set so far (VmHWM), in MiB.
    func peakRSSMiB() -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kib / 1024
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: cacheDir)
    }
}

/// Posts one file as multipart/form-data again and again on one kept-alive loopback
/// connection, timing each request from the first byte sent to the last byte of the
/// answer. A plain blocking socket: the peer's figure is in-process, so the client's own
/// CPU (URLSession's threads on a 2-core machine cost ~3 ms a request) must not be
/// counted against the server.
final class HTTPUploadClient {
    private let request: [UInt8]
    private let port: Int
    private var socket: Int32 = -1

    init(port: Int, path: String, field: String, file: Data, name: String) {
        let boundary = "convlens-bench-\(UUID().uuidString)"
        var body = Array(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"\(name)\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                .utf8)
        body += file
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        let head =
            "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: multipart/form-data; boundary=\(boundary)\r\n"
            + "Content-Length: \(body.count)\r\n\r\n"
        request = Array(head.utf8) + body
        self.port = port
    }

    deinit { if socket >= 0 { close(socket) } }

    private func connectOnce() throws {
        guard socket < 0 else { return }
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw CLIError("connect to 127.0.0.1:\(port): errno \(errno)")
        }
        socket = fd
    }

    /// One request's wall time in milliseconds; anything but a 200 with a PNG body throws.
    @discardableResult
    func post() throws -> Double {
        try connectOnce()
        let t0 = DispatchTime.now().uptimeNanoseconds
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(socket, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw CLIError("send: errno \(errno)") }
            sent += n
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var headerEnd: Int?
        var contentLength = 0
        while headerEnd == nil || answer.count < headerEnd! + contentLength {
            let n = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw CLIError("the server closed the connection (errno \(errno))") }
            answer += buffer[0..<n]
            if headerEnd == nil, let end = answer.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound {
                headerEnd = end
                let head = String(decoding: answer[0..<end], as: UTF8.self).lowercased()
                guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                    let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
                else { throw CLIError("answer without Content-Length:\n\(head)") }
                contentLength = length
            }
        }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        let status = String(decoding: answer.prefix(12), as: UTF8.self)
        let body = answer[headerEnd!...]
        guard status.hasSuffix(" 200"), body.starts(with: [0x89, 0x50, 0x4E, 0x47]) else {
            throw CLIError("POST: \(String(decoding: answer.prefix(400), as: UTF8.self))")
        }
        return ms
    }
}

/// Text appended from a pipe's handler thread and read by the waiting one.
private final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ d: Data) { lock.withLock { data.append(d) } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
