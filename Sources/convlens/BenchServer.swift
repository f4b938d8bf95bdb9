import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
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
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        process.executableURL = URL(fileURLWithPath: executable)
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

/// Posts one file as multipart/form-data again and again on one kept-alive connection,
/// timing each request from send to the last byte of the answer.
final class HTTPUploadClient {
    private let request: URLRequest
    private let session = URLSession(configuration: .ephemeral)

    init(url: String, field: String, file: Data, name: String) {
        let boundary = "convlens-bench-\(UUID().uuidString)"
        var body = Data(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"\(name)\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                .utf8)
        body.append(file)
        body.append(Data("\r\n--\(boundary)--\r\n".utf8))
        var r = URLRequest(url: URL(string: url)!)
        r.httpMethod = "POST"
        r.httpBody = body
        r.setValue("multipart/form-data; boundary=\(boundary)", forHTTPHeaderField: "Content-Type")
        request = r
    }

    /// One request's wall time in milliseconds; anything but a 200 with a PNG body throws.
    @discardableResult
    func post() throws -> Double {
        let done = DispatchSemaphore(value: 0)
        let answer = LockedResult()
        let t0 = DispatchTime.now().uptimeNanoseconds
        session.dataTask(with: request) { data, response, error in
            answer.set(data: data, status: (response as? HTTPURLResponse)?.statusCode, error: error)
            done.signal()
        }.resume()
        done.wait()
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        let (data, status, error) = answer.get()
        if let error { throw CLIError("POST \(request.url?.absoluteString ?? ""): \(error)") }
        guard status == 200, let data, data.starts(with: [0x89, 0x50, 0x4E, 0x47]) else {
            throw CLIError(
                "POST \(request.url?.absoluteString ?? ""): HTTP \(status ?? 0) \(String(decoding: (data ?? Data()).prefix(300), as: UTF8.self))"
            )
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

/// A URLSession completion handed from its queue to the waiting thread.
private final class LockedResult: @unchecked Sendable {
    private let lock = NSLock()
    private var value: (Data?, Int?, Error?) = (nil, nil, nil)
    func set(data: Data?, status: Int?, error: Error?) { lock.withLock { value = (data, status, error) } }
    func get() -> (Data?, Int?, Error?) { lock.withLock { value } }
}
