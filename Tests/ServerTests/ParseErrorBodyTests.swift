import Foundation
import HTTPTypes
import Server
import Testing

/// A request the HTTP parser refuses still gets a JSON error, as every other 4xx does (it
/// was a 400 with an empty body).
@Suite(.timeLimit(.minutes(5))) struct ParseErrorBodyTests {
    @Test func unparsableRequestsGetJSON400s() async throws {
        try await withServer { _, client in
            let longURL = "/healthz?" + String(repeating: "a", count: 200_000)
            let requests: [(String, Data)] = [
                ("unknown method", Data("FROB /healthz HTTP/1.1\r\nHost: t\r\n\r\n".utf8)),
                ("over-long URL", Data("GET \(longURL) HTTP/1.1\r\nHost: t\r\n\r\n".utf8)),
                ("raw non-ASCII path byte", Data("GET /he".utf8) + Data([0xFF]) + Data("althz HTTP/1.1\r\nHost: t\r\n\r\n".utf8)),
                (
                    "control character in Content-Type",
                    Data("POST /api/predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/\u{01}png\r\nContent-Length: 0\r\n\r\n".utf8)
                ),
            ]
            for (what, request) in requests {
                let r = try await rawExchange(port: client.port, request)
                #expect(r.status == 400, "\(what): \(r.head)")
                #expect(r.header("Content-Type")?.hasPrefix("application/json") == true, "\(what): \(r.head)")
                #expect(r.header("Content-Length") == String(r.body.count), "\(what): \(r.head)")
                let object = try JSONSerialization.jsonObject(with: r.body) as? [String: Any]
                #expect(object?["error"] as? String == "bad_request", "\(what): \(r.text)")
                #expect((object?["detail"] as? String)?.isEmpty == false, "\(what): \(r.text)")
            }
            try await client.expectHealthy()
        }
    }
}
