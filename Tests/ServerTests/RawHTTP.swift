import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A plain TCP connection to the test server, for what URLSession will not send: bodies
/// trickled byte by byte, broken chunked encoding, connections held open without a
/// request, a client hanging up mid-upload. Blocking calls run on a thread of their own
/// (`offPool`), never on the cooperative pool the server's handlers need.
final class RawConnection: @unchecked Sendable {
    let fd: Int32

    /// Connects to the server on 127.0.0.1, from `source` when given (another loopback
    /// address, so the server sees another client).
    init(port: Int, from source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        do {
            if let source { try Self.call(fd, address: source, port: 0, bind) }
            try Self.call(fd, address: "127.0.0.1", port: port, connect)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// `bind` or `connect` of `fd` to an IPv4 address and port.
    private static func call(
        _ fd: Int32, address: String, port: Int, _ call: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32
    ) throws {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = inet_addr(address)
        let result = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    deinit { Glibc.close(fd) }

    /// Sends everything; false if the connection is gone.
    @discardableResult
    func send(_ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Data(text.utf8)) }

    enum Read: Equatable {
        case data(Data)
        /// The server closed (EOF) or reset the connection.
        case closed
        case timedOut
    }

    /// Waits up to `timeout` seconds for bytes.
    func receive(timeout: Double) -> Read {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&p, 1, Int32(timeout * 1000))
        if ready == 0 { return .timedOut }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { return .closed }
        return .data(Data(buffer[0..<n]))
    }

    /// Everything the server sends until it closes the connection or `timeout` passes.
    func readToEnd(timeout: Double) -> (data: Data, closed: Bool) {
        let end = Date().addingTimeInterval(timeout)
        var all = Data()
        while true {
            let left = end.timeIntervalSinceNow
            if left <= 0 { return (all, false) }
            switch receive(timeout: left) {
            case .data(let d): all.append(d)
            case .closed: return (all, true)
            case .timedOut: return (all, false)
            }
        }
    }

    /// Half-closes (FIN) the sending side.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Hangs up both ways, as a client that gave up does.
    func hangUp() { shutdown(fd, Int32(SHUT_RDWR)) }
}

/// Runs blocking work on a thread of its own.
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// An HTTP/1.1 response as bytes came off the wire.
struct RawResponse: Sendable {
    var status: Int
    var head: String
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }

    /// The first value of a header (name case-insensitive).
    func header(_ name: String) -> String? {
        for line in head.components(separatedBy: "\r\n").dropFirst() {
            let kv = line.split(separator: ":", maxSplits: 1)
            if kv.count == 2, kv[0].lowercased() == name.lowercased() { return kv[1].trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    init?(_ data: Data) {
        guard let split = data.range(of: Data("\r\n\r\n".utf8)) else { return nil }
        head = String(decoding: data[..<split.lowerBound], as: UTF8.self)
        body = data[split.upperBound...]
        let statusLine = head.prefix { $0 != "\r" }.split(separator: " ")
        guard statusLine.count >= 2, let code = Int(statusLine[1]) else { return nil }
        status = code
    }
}

/// Sends `request` as written (add `Connection: close`) and reads the whole answer. The
/// wait is long, as TestHTTPClient's: a debug build under the whole parallel `swift test`
/// on 2 cores can take a minute to answer anything.
func rawExchange(port: Int, from source: String? = nil, _ request: Data, timeout: Double = 300) async throws -> RawResponse {
    let connection = try RawConnection(port: port, from: source)
    let (data, _) = await offPool {
        connection.send(request)
        return connection.readToEnd(timeout: timeout)
    }
    return try #require(RawResponse(data), "no HTTP response: \(String(decoding: data.prefix(200), as: UTF8.self))")
}

extension TestHTTPClient {
    /// The server's port.
    var port: Int { Int(base.split(separator: ":").last!)! }
}
