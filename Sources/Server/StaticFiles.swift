import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// The gallery's files under `server.public_dir`, for any path no route claims: GET and
/// HEAD, a content type by extension, ETag/Last-Modified revalidation and one byte range
/// (RFC 9110 §14). Written out instead of Hummingbird's FileMiddleware to be strict about
/// what leaves the directory:
/// - the path is percent-decoded once; control characters (a `%00` would cut the path
///   short at the C boundary and serve `x.png%00.html` as HTML) are a 400;
/// - `.`, `..` and other dot-name segments are refused, and the file's real path (symlinks resolved)
///   must lie under the directory's real path, so a link inside public/ cannot expose
///   anything outside it;
/// - only regular files are served (a directory serves its index.html).
struct StaticFileMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The directory's real path, or nil if it does not exist (nothing is served).
    let root: String?

    init(directory: String) {
        root = StaticFiles.realPath(directory)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let file = try resolve(request.uri.path) else { throw error }
            guard request.method == .get || request.method == .head else {
                throw APIError(
                    .methodNotAllowed, "method_not_allowed", "\(request.uri.path) is a static file: use GET or HEAD",
                    headers: [.allow: "GET, HEAD"])
            }
            return try serve(file, request)
        }
    }

    struct File {
        var path: String
        var size: Int
        var modified: Date
    }

    /// The regular file a request path names, or nil (a 404).
    func resolve(_ rawPath: String) throws -> File? {
        guard let root else { return nil }
        guard let decoded = rawPath.removingPercentEncoding else {
            throw APIError.badRequest("the path is not valid percent-encoded UTF-8")
        }
        guard !decoded.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw APIError.badRequest("the path contains a control character (such as %00)")
        }
        let segments = decoded.split(separator: "/", omittingEmptySubsequences: true)
        // `.` and `..` never leave the directory; other dot-names (`.git`, `.env`) are not
        // gallery files either.
        guard !segments.contains(where: { $0.hasPrefix(".") }) else { return nil }
        var candidate = ([root] + segments.map(String.init)).joined(separator: "/")
        for _ in 0..<2 {
            guard let real = StaticFiles.realPath(candidate), real == root || real.hasPrefix(root + "/") else { return nil }
            var info = stat()
            guard stat(real, &info) == 0 else { return nil }
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                let modified = Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
                return File(path: real, size: Int(info.st_size), modified: modified)
            case S_IFDIR:
                candidate = real + "/index.html"
            default:
                return nil
            }
        }
        return nil
    }

    func serve(_ file: File, _ request: Request) throws -> Response {
        let etag = "\"\(String(file.size, radix: 16))-\(String(Int64(file.modified.timeIntervalSince1970 * 1e6), radix: 16))\""
        let lastModified = StaticFiles.httpDate(file.modified)
        var headers: HTTPFields = [
            .contentType: StaticFiles.contentType(file.path),
            .eTag: etag,
            .lastModified: lastModified,
            .acceptRanges: "bytes",
            .cacheControl: "no-cache",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        ]
        // RFC 9110 §13.1.2/§13.1.3: If-None-Match decides when present; else If-Modified-Since.
        let inm = request.headers[values: .ifNoneMatch]
        if !inm.isEmpty {
            let tags = inm.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            if tags.contains(where: { $0 == "*" || $0 == etag || $0 == "W/" + etag }) {
                return Response(status: .notModified, headers: [.eTag: etag, .lastModified: lastModified, .cacheControl: "no-cache"])
            }
        } else if let since = request.headers[.ifModifiedSince].flatMap(StaticFiles.parseHTTPDate),
            floor(file.modified.timeIntervalSince1970) <= since.timeIntervalSince1970
        {
            return Response(status: .notModified, headers: [.eTag: etag, .lastModified: lastModified, .cacheControl: "no-cache"])
        }
        var range = 0..<file.size
        var status = HTTPResponse.Status.ok
        // Ranges apply to GET only (§14.2); If-Range that does not match sends the whole file.
        if request.method == .get, let header = request.headers[.range],
            request.headers[.ifRange].map({ $0 == etag || $0 == lastModified }) ?? true
        {
            switch StaticFiles.byteRange(header, size: file.size) {
            case .ignore:
                break
            case .unsatisfiable:
                throw APIError(
                    .rangeNotSatisfiable, "range_not_satisfiable",
                    "the range \(header.prefix(100)) is outside the file's \(file.size) bytes",
                    headers: [.contentRange: "bytes */\(file.size)"])
            case .range(let r):
                range = r
                status = .partialContent
                headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(file.size)"
            }
        }
        headers[.contentLength] = String(range.count)
        if request.method == .head {
            return Response(status: status, headers: headers, body: .init())
        }
        let data: Data
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: file.path))
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(range.lowerBound))
            data = try handle.read(upToCount: range.count) ?? Data()
        } catch {
            throw APIError.notFound("cannot read \(request.uri.path)")
        }
        // The file changed size between stat and read: answer what was read, consistently.
        guard data.count == range.count else {
            throw APIError(
                .serviceUnavailable, "file_changed", "\(request.uri.path) changed while it was read; ask again",
                headers: [.retryAfter: "1"])
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Path, range, content-type and date helpers of the static files (tested directly).
enum StaticFiles {
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    enum RangeOutcome: Equatable {
        /// No usable single range: send the whole file (RFC 9110 §14.2 lets a server ignore Range).
        case ignore
        /// 416: a well-formed range no byte of the file satisfies.
        case unsatisfiable
        case range(Range<Int>)
    }

    /// One `bytes=` range of a file of `size` bytes (RFC 9110 §14.1.2). Several ranges
    /// are answered with the whole file. Numbers too large for an Int saturate, so
    /// `0-99999999999999999999` is "to the end" and no arithmetic can overflow.
    static func byteRange(_ header: String, size: Int) -> RangeOutcome {
        let value = header.trimmingCharacters(in: .whitespaces)
        guard value.count > 6, value.prefix(6).lowercased() == "bytes=" else { return .ignore }
        let specs = value.dropFirst(6).split(separator: ",", omittingEmptySubsequences: false)
        guard specs.count == 1 else { return .ignore }
        let spec = specs[0].trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return .ignore }
        let first = spec[..<dash]
        let last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            // A suffix: the last N bytes.
            guard let n = digits(last) else { return .ignore }
            guard n > 0, size > 0 else { return .unsatisfiable }
            return .range((size - min(n, size))..<size)
        }
        guard let start = digits(first) else { return .ignore }
        if last.isEmpty {
            return start < size ? .range(start..<size) : .unsatisfiable
        }
        guard let end = digits(last) else { return .ignore }
        guard end >= start else { return .ignore }  // invalid (§14.1.1): ignored, not 416
        guard start < size else { return .unsatisfiable }
        return .range(start..<(min(end, size - 1) + 1))
    }

    /// A non-empty run of ASCII digits as an Int, saturating at Int.max.
    static func digits(_ text: Substring) -> Int? {
        guard !text.isEmpty else { return nil }
        var value = 0
        for byte in text.utf8 {
            guard (0x30...0x39).contains(byte) else { return nil }
            let d = Int(byte - 0x30)
            value = value > (Int.max - d) / 10 ? Int.max : value * 10 + d
        }
        return value
    }

    static let types: [String: String] = [
        "html": "text/html; charset=utf-8", "htm": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
        "js": "text/javascript; charset=utf-8", "mjs": "text/javascript; charset=utf-8", "json": "application/json",
        "map": "application/json", "yaml": "application/yaml; charset=utf-8", "yml": "application/yaml; charset=utf-8",
        "txt": "text/plain; charset=utf-8", "md": "text/markdown; charset=utf-8", "png": "image/png", "jpg": "image/jpeg",
        "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp", "svg": "image/svg+xml", "ico": "image/x-icon",
        "woff2": "font/woff2", "woff": "font/woff", "wasm": "application/wasm",
    ]

    static func contentType(_ path: String) -> String {
        let name = path.split(separator: "/").last ?? ""
        guard let dot = name.lastIndex(of: ".") else { return "application/octet-stream" }
        return types[name[name.index(after: dot)...].lowercased()] ?? "application/octet-stream"
    }

    static let formatter = Mutex<DateFormatter>(
        {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "GMT")
            f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
            return f
        }())

    static func httpDate(_ date: Date) -> String { formatter.withLock { $0.string(from: date) } }
    static func parseHTTPDate(_ text: String) -> Date? { formatter.withLock { $0.date(from: text) } }
}

/// The registered routes, filled in once the router has them.
final class RouteTable: Sendable {
    private let routes = Mutex<[(method: String, segments: [Substring])]>([])

    func set(_ endpoints: [(method: String, path: String)]) {
        routes.withLock { $0 = endpoints.map { ($0.method, $0.path.split(separator: "/")) } }
    }

    /// The methods registered for a path (`:name` segments match any one segment).
    func methods(for path: String) -> [String] {
        let parts = path.split(separator: "/")
        return routes.withLock { routes in
            routes.filter { route in
                route.segments.count == parts.count
                    && zip(route.segments, parts).allSatisfy { $0.hasPrefix(":") ? !$1.isEmpty : $0 == $1 }
            }.map(\.method)
        }
    }
}

/// A known path asked with a method it does not have: 405 with `Allow` (RFC 9110 §15.5.6),
/// not the router's 404.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            var allowed: [String] = []
            for m in routes.methods(for: request.uri.path) where !allowed.contains(m) { allowed.append(m) }
            // Every GET route answers HEAD too (`HeadMiddleware`).
            if allowed.contains("GET"), !allowed.contains("HEAD") { allowed.append("HEAD") }
            guard !allowed.isEmpty, !allowed.contains(request.method.rawValue) else { throw error }
            let allow = allowed.joined(separator: ", ")
            throw APIError(
                .methodNotAllowed, "method_not_allowed", "\(request.method.rawValue) is not allowed on \(request.uri.path); use \(allow)",
                headers: [.allow: allow])
        }
    }
}
