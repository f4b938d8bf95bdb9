import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Imaging
import KerasFormat
import Logging
import NIOCore
import Server
import Testing
import Visualization

/// The repository root (sources, bundled model, public/).
let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The bundled model, loaded once for every server the tests start.
let bundled: (session: ModelSession, digest: String) = {
    let profile = try! ModelProfile.resolve(root.appendingPathComponent("models/efficientnet_lite0.json"))
    return (try! ModelSession(profile: profile), try! ConvLensService.digest(of: profile))
}()

func sample(_ name: String) throws -> Data {
    try Data(contentsOf: root.appendingPathComponent("public/samples/\(name)"))
}

func fixtureImage(_ name: String) throws -> Data {
    try Data(contentsOf: root.appendingPathComponent("Tests/Fixtures/images/\(name)"))
}

func temporaryDirectory(_ name: String) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-server-\(name)-\(UUID().uuidString)")
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
    change(&s)
    return s
}

/// Runs `test` against a real server on loopback (HummingbirdTesting's live mode: a real
/// socket and a real HTTP client on one connection; `.ahc(.http)` gives a pool of
/// connections for concurrent requests), then shuts the server down gracefully.
func withServer<T: Sendable>(_ settings: ServerSettings = testSettings(), setup: TestingSetup = .live,
                             _ test: @Sendable (ConvLensService, any TestClientProtocol) async throws -> T) async throws -> T {
    let service = try ConvLensService(settings: settings, session: bundled.session, modelDigest: bundled.digest)
    var logger = Logger(label: "convlens-test")
    logger.logLevel = .warning
    let app = ConvLensServer.application(service: service, logger: logger)
    return try await app.test(setup) { client in try await test(service, client) }
}

extension TestClientProtocol {
    /// POSTs an image as the raw body.
    func post(_ uri: String, image: Data, contentType: String = "image/png", headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = headers
        h[.contentType] = contentType
        return try await execute(uri: uri, method: .post, headers: h, body: ByteBuffer(bytes: image))
    }

    /// POSTs an image as the field `name` of a multipart/form-data form, as `curl -F` does.
    func postForm(_ uri: String, image: Data, field: String = "image") async throws -> TestResponse {
        let boundary = "------------------------convlens\(UInt32.random(in: 0...UInt32.max))"
        var body = Data()
        body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n".utf8))
        body.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n".utf8))
        body.append(image)
        body.append(Data("\r\n--\(boundary)--\r\n".utf8))
        return try await execute(uri: uri, method: .post, headers: [.contentType: "multipart/form-data; boundary=\(boundary)"],
                                 body: ByteBuffer(bytes: body))
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers)
    }

    /// Asserts the server still answers after whatever the test did to it.
    func expectHealthy(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let r = try await get("/healthz")
        #expect(r.status == .ok, sourceLocation: sourceLocation)
        #expect(String(buffer: r.body).contains("\"ok\""), sourceLocation: sourceLocation)
    }
}

extension TestResponse {
    var data: Data { Data(body.readableBytesView) }
    var text: String { String(buffer: body) }
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
