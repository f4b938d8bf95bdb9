import Foundation
import HTTPTypes
import Imaging
import Server
import Testing

/// The static gallery files (paths, symlinks, byte ranges), 405 for known paths, and the
/// result cache's checksums.
@Suite(.timeLimit(.minutes(5))) struct StaticAndSpecHardeningTests {
    func rawGET(_ client: TestHTTPClient, _ path: String, _ headers: [String] = [], method: String = "GET") async throws -> RawResponse {
        let extra = headers.map { $0 + "\r\n" }.joined()
        return try await rawExchange(
            port: client.port,
            Data("\(method) \(path) HTTP/1.1\r\nHost: x\r\n\(extra)Connection: close\r\n\r\n".utf8))
    }

    @Test func aNULInThePathDoesNotServeThePNGAsHTML() async throws {
        try await withServer { _, client in
            let plain = try await rawGET(client, "/samples/chelsea.png")
            #expect(plain.status == 200)
            #expect(plain.header("Content-Type") == "image/png")
            for path in ["/samples/chelsea.png%00.html", "/samples/chelsea.png%00", "/samples/%2e%2e/samples/chelsea.png"] {
                let r = try await rawGET(client, path)
                #expect(r.status == 400 || r.status == 404, "\(path): \(r.head)")
                #expect(r.header("Content-Type")?.hasPrefix("application/json") == true, "\(path): \(r.head)")
            }
        }
    }

    @Test func symlinksOutOfThePublicDirectoryAreNotFollowed() async throws {
        let base = temporaryDirectory("public-links")
        let publicDir = base.appendingPathComponent("public")
        let outside = base.appendingPathComponent("secret")
        let fm = FileManager.default
        try fm.createDirectory(at: publicDir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try fm.createDirectory(at: outside, withIntermediateDirectories: true)
        try "<h1>gallery</h1>".write(to: publicDir.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        try "inside".write(to: publicDir.appendingPathComponent("sub/inside.txt"), atomically: true, encoding: .utf8)
        try "top secret".write(to: outside.appendingPathComponent("key.txt"), atomically: true, encoding: .utf8)
        try fm.createSymbolicLink(
            atPath: publicDir.appendingPathComponent("leak.txt").path, withDestinationPath: outside.appendingPathComponent("key.txt").path)
        try fm.createSymbolicLink(atPath: publicDir.appendingPathComponent("out").path, withDestinationPath: outside.path)
        try fm.createSymbolicLink(atPath: publicDir.appendingPathComponent("alias.txt").path, withDestinationPath: "sub/inside.txt")
        try "hidden".write(to: publicDir.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
        try await withServer(testSettings { $0.publicDir = publicDir.path }) { _, client in
            for path in ["/leak.txt", "/out/key.txt", "/out/"] {
                let r = try await rawGET(client, path)
                #expect(r.status == 404, "\(path): \(r.head)")
                #expect(!r.text.contains("top secret"), "\(path) leaked a file outside public/")
            }
            let hidden = try await rawGET(client, "/.env")
            #expect(hidden.status == 404 && !hidden.text.contains("hidden"), "a dot-file was served")
            let alias = try await rawGET(client, "/alias.txt")
            #expect(alias.status == 200 && alias.text == "inside", "a link within public/ is fine: \(alias.head)")
            let index = try await rawGET(client, "/")
            #expect(index.status == 200 && index.text.contains("gallery"))
            #expect(index.header("Content-Type")?.hasPrefix("text/html") == true)
        }
    }

    @Test func byteRangesFollowRFC9110() async throws {
        let file = try sample("chelsea.png")
        let n = file.count
        try await withServer { _, client in
            let path = "/samples/chelsea.png"
            let suffix = try await rawGET(client, path, ["Range: bytes=-5"])
            #expect(suffix.status == 206)
            #expect(suffix.body == file.suffix(5), "bytes=-5 is the last five bytes")
            #expect(suffix.header("Content-Range") == "bytes \(n - 5)-\(n - 1)/\(n)")
            let head = try await rawGET(client, path, ["Range: bytes=0-7"])
            #expect(head.status == 206 && head.body == file.prefix(8))
            let huge = try await rawGET(client, path, ["Range: bytes=0-99999999999999999999"])
            #expect(huge.status == 206 && huge.body == file, "a last position past the end means to the end")
            #expect(huge.header("Content-Range") == "bytes 0-\(n - 1)/\(n)")
            let longSuffix = try await rawGET(client, path, ["Range: bytes=-99999999999999999999"])
            #expect(longSuffix.status == 206 && longSuffix.body == file)
            for unsatisfiable in ["bytes=-0", "bytes=\(n)-", "bytes=\(n + 10)-\(n + 20)", "bytes=99999999999999999999-"] {
                let r = try await rawGET(client, path, ["Range: \(unsatisfiable)"])
                #expect(r.status == 416, "\(unsatisfiable): \(r.head)")
                #expect(r.header("Content-Range") == "bytes */\(n)", "\(unsatisfiable)")
            }
            for ignored in ["bytes=5-2", "bytes=0-1,4-5", "items=0-1", "bytes=a-b"] {
                let r = try await rawGET(client, path, ["Range: \(ignored)"])
                #expect(r.status == 200 && r.body == file, "\(ignored): \(r.head)")
            }
            let whole = try await rawGET(client, path, method: "HEAD")
            #expect(whole.status == 200 && whole.body.isEmpty)
            #expect(whole.header("Content-Length") == "\(n)")
            let etag = try #require(whole.header("ETag"))
            let cached = try await rawGET(client, path, ["If-None-Match: \(etag)"])
            #expect(cached.status == 304 && cached.body.isEmpty)
            let changed = try await rawGET(client, path, ["Range: bytes=0-3", "If-Range: \"other\""])
            #expect(changed.status == 200 && changed.body == file, "If-Range that does not match sends everything")
            try await client.expectHealthy()
        }
    }

    @Test func unknownMethodsOnKnownPathsAre405WithAllow() async throws {
        try await withServer { _, client in
            let cases: [(String, String, String)] = [
                ("TRACE", "/healthz", "GET, HEAD"), ("DELETE", "/heatmap", "POST"), ("PUT", "/jobs/0123", "GET, DELETE, HEAD"),
                ("POST", "/filters/stem_conv/0", "GET, HEAD"), ("TRACE", "/", "GET, HEAD"), ("PATCH", "/samples/chelsea.png", "GET, HEAD"),
            ]
            for (method, path, allow) in cases {
                let r = try await rawGET(client, path, method: method)
                #expect(r.status == 405, "\(method) \(path): \(r.head)")
                #expect(r.header("Allow") == allow, "\(method) \(path): \(r.head)")
                #expect(r.text.contains("method_not_allowed"))
            }
            let unknown = try await rawGET(client, "/no/such/path", method: "TRACE")
            #expect(unknown.status == 404)
            try await client.expectHealthy()
        }
    }

    @Test func aTruncatedCacheFileIsDeletedAndRecomputed() async throws {
        let cacheDir = temporaryDirectory("corrupt-cache").path
        let settings = testSettings { $0.cacheDir = cacheDir }
        let uri = "/filters/stem_activation/3?steps=2"
        let first = try await withServer(settings) { _, client in
            let r = try await client.get(uri)
            #expect(r.status == .ok)
            return r.data
        }
        let files = (FileManager.default.enumerator(atPath: cacheDir)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".png") }
        #expect(files.count == 1, "\(files)")
        let file = URL(fileURLWithPath: cacheDir).appendingPathComponent(try #require(files.first))
        let stored = try Data(contentsOf: file)
        try stored.prefix(stored.count / 2).write(to: file)
        try await withServer(settings) { service, client in
            let r = try await client.get(uri)
            #expect(r.status == .ok)
            #expect(r.header("X-Cache") == "miss", "a damaged file was served as a hit")
            #expect(r.data == first, "the recomputed picture is the same")
            _ = try decodeImage(r.data)
            #expect(service.cache.stats.corrupt == 1)
            let metrics = try await client.get("/metrics").text
            #expect(metrics.contains("convlens_cache_corrupt_total 1"))
            // The good result is back on disk.
            #expect(try Data(contentsOf: file).count == stored.count)
            let again = try await client.get(uri)
            #expect(again.header("X-Cache") == "hit" && again.data == first)
        }
    }
}
