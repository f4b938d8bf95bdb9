import Foundation
import HTTPTypes
import Hummingbird
import Imaging
import KerasFormat
import Logging
import NIOCore
import Server
import ServiceLifecycle
import TestSupport
import Testing
import Visualization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The repository root (sources, bundled model, public/).
let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The bundled model, loaded once for every server the tests start.
let bundled: (session: ModelSession, digest: String) = {
    let profile = try! ModelProfile.resolve(root.appendingPathComponent("models/efficientnet_lite0.json"))
    let session = try! ModelSession(profile: profile)
    return (session, try! session.modelDigest())
}()

func sample(_ name: String) throws -> Data {
    try Data(contentsOf: root.appendingPathComponent("public/samples/\(name)"))
}

func fixtureImage(_ name: String) throws -> Data {
    try Data(contentsOf: root.appendingPathComponent("Tests/Fixtures/images/\(name)"))
}

func temporaryDirectory(_ name: String) -> URL {
    let url = scratchURL("server-\(name)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Settings for a test server: port 0, a fresh cache directory, the repository's public/.
func testSettings(_ change: (inout ServerSettings) -> Void = { _ in }) -> ServerSettings {
    var s = ServerSettings()
    s.port = 0
    s.publicDir = root.appendingPathComponent("public").path
    s.cacheDir = temporaryDirectory("cache").path
    s.jobWaitSeconds = 60
    s.shutdownGraceSeconds = 0
    change(&s)
    return s
}

/// Runs `test` against a real server on loopback — the application `convlens serve`
/// runs, on a real socket, with URLSession as the client (several connections, and
/// timeouts long enough for a debug build on a loaded 2-core machine; the bundled model
/// unless another is given) — then cancels
/// what is left and shuts the server down gracefully.
func withServer<T: Sendable>(
    _ settings: ServerSettings = testSettings(),
    model: (session: ModelSession, digest: String) = bundled,
    registered: (@Sendable ([String]) -> Void)? = nil,
    _ test: @Sendable (ConvLensService, TestHTTPClient) async throws -> T
) async throws -> T {
    let service = try ConvLensService(settings: settings, session: model.session, modelDigest: model.digest)
    var logger = Logger(label: "convlens-test")
    logger.logLevel = .warning
    let (ports, portSink) = AsyncStream<Int>.makeStream()
    let app = ConvLensServer.application(
        service: service, logger: logger, registered: registered,
        onRunning: { port in portSink.yield(port) })
    let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var next = ports.makeAsyncIterator()
        guard let port = await next.next() else { throw CancellationError() }
        let client = TestHTTPClient(base: "http://127.0.0.1:\(port)")
        let outcome: Result<T, any Error>
        do { outcome = .success(try await test(service, client)) } catch { outcome = .failure(error) }
        // Cancel leftover jobs first (their event streams end with them), then stop the server.
        await service.drain()
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return try outcome.get()
    }
}

/// An HTTP client for the tests (URLSession: a pool of connections, no caching).
struct TestHTTPClient: Sendable {
    let base: String
    let session: URLSession = {
        let c = URLSessionConfiguration.ephemeral
        c.timeoutIntervalForRequest = 600
        c.timeoutIntervalForResource = 600
        c.httpMaximumConnectionsPerHost = 16
        c.requestCachePolicy = .reloadIgnoringLocalCacheData
        c.urlCache = nil
        return URLSession(configuration: c, delegate: NoRedirects(), delegateQueue: nil)
    }()

    func execute(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:], body: ByteBuffer? = nil) async throws -> Reply {
        var request = URLRequest(url: URL(string: base + uri)!)
        request.httpMethod = method.rawValue
        for field in headers { request.setValue(field.value, forHTTPHeaderField: field.name.rawName) }
        if let body { request.httpBody = Data(body.readableBytesView) }
        let (data, response) = try await session.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var fields = HTTPFields()
        for (name, value) in http.allHeaderFields {
            if let n = HTTPField.Name("\(name)") { fields[n] = "\(value)" }
        }
        return Reply(status: HTTPResponse.Status(code: http.statusCode), headers: fields, data: data)
    }

    /// POSTs an image as the raw body.
    func post(_ uri: String, image: Data, contentType: String = "image/png", headers: HTTPFields = [:]) async throws -> Reply {
        var h = headers
        h[.contentType] = contentType
        return try await execute(uri: uri, method: .post, headers: h, body: ByteBuffer(bytes: image))
    }

    /// POSTs an image as the field `name` of a multipart/form-data form, as `curl -F` does.
    func postForm(_ uri: String, image: Data, field: String = "image") async throws -> Reply {
        let boundary = "------------------------convlens\(UInt32.random(in: 0...UInt32.max))"
        var body = Data()
        body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n".utf8))
        body.append(
            Data(
                "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n"
                    .utf8))
        body.append(image)
        body.append(Data("\r\n--\(boundary)--\r\n".utf8))
        return try await execute(
            uri: uri, method: .post, headers: [.contentType: "multipart/form-data; boundary=\(boundary)"],
            body: ByteBuffer(bytes: body))
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> Reply {
        try await execute(uri: uri, method: .get, headers: headers)
    }

    /// Asserts the server still answers after whatever the test did to it.
    func expectHealthy(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let r = try await get("/healthz")
        #expect(r.status == .ok, sourceLocation: sourceLocation)
        #expect(r.text.contains("\"ok\""), sourceLocation: sourceLocation)
    }
}

/// The tests look at every response as sent: a Location header is not followed.
final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}

struct Reply: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var data: Data
    var body: ByteBuffer { ByteBuffer(bytes: data) }
    var text: String { String(decoding: data, as: UTF8.self) }
    func json() throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: data) as? [String: Any], "not a JSON object: \(text.prefix(300))")
    }
    /// The JSON error body: (error code, detail).
    func error() throws -> (code: String, detail: String) {
        #expect(headers[.contentType]?.hasPrefix("application/json") == true, "error without a JSON content type")
        let obj = try json()
        return (try #require(obj["error"] as? String), try #require(obj["detail"] as? String))
    }
    func header(_ name: String) -> String? { headers[HTTPField.Name(name)!] }
}

/// A PNG the test writes: `width`×`height` of one grey level (compresses to a few KB even when huge).
func flatPNG(width: Int, height: Int) throws -> Data {
    try encodePNG(Image(width: width, height: height, channels: 3, pixels: [UInt8](repeating: 128, count: width * height * 3)))
}
