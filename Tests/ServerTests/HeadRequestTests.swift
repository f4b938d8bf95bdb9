import Foundation
import HTTPTypes
import Server
import Testing
import Yams

/// HEAD on every GET route answers as GET would, without the body (it was 405).
@Suite(.timeLimit(.minutes(10))) struct HeadRequestTests {
    @Test func everyDocumentedGetAnswersHead() async throws {
        let text = try String(contentsOf: root.appendingPathComponent("public/openapi.yaml"), encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        // The event stream stays open while its job runs: its HEAD is asked of a finished job.
        let gets = paths.filter { $0.value["get"] != nil }.keys.sorted()
        #expect(gets.count >= 10)
        try await withServer { _, client in
            let job = try await client.get("/filters/stem_activation/0?size=32&steps=1")
            #expect(job.status == .ok)
            let started = try await client.get("/filters/stem_activation/1?size=32&steps=1&wait=0")
            let id = try #require(try started.json()["id"] as? String)
            var state = ""
            for _ in 0..<600 where state != "done" {
                try await Task.sleep(for: .milliseconds(50))
                state = try await client.get("/jobs/\(id)").json()["state"] as? String ?? ""
            }
            for path in gets {
                let uri =
                    path.replacingOccurrences(of: "{layer}", with: "stem_activation").replacingOccurrences(of: "{index}", with: "0")
                    .replacingOccurrences(of: "{id}", with: id).replacingOccurrences(
                        of: "{address}", with: String(repeating: "0", count: 64))
                    + (path.hasPrefix("/filters") ? "?size=32&steps=1" : "")
                let get = try await rawExchange(port: client.port, Data("GET \(uri) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".utf8))
                let head = try await rawExchange(
                    port: client.port, Data("HEAD \(uri) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".utf8))
                #expect(head.status == get.status, "HEAD \(uri) → \(head.status), GET → \(get.status)")
                #expect(head.body.isEmpty, "HEAD \(uri) sent \(head.body.count) bytes of body")
                #expect(head.header("Content-Type") == get.header("Content-Type"), "HEAD \(uri)")
                if let length = get.header("Content-Length"), !path.hasSuffix("/events"), path != "/metrics" {
                    #expect(head.header("Content-Length") == length, "HEAD \(uri): \(head.header("Content-Length") ?? "none") vs \(length)")
                }
            }
            // A method a GET route lacks lists HEAD with GET.
            let delete = try await client.execute(uri: "/api/model", method: .delete)
            #expect(delete.status == .methodNotAllowed && delete.header("Allow") == "GET, HEAD", "\(delete.header("Allow") ?? "")")
        }
    }
}
