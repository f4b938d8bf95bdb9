import Foundation
import Testing

/// A grid's default method is auto and the answer says what it resolved to (X-Method),
/// new or cached; one filter's default stays the book's.
@Suite(.timeLimit(.minutes(10))) struct AutoMethodRouteTests {
    @Test func gridsDefaultToAutoAndSayTheMethodDrawn() async throws {
        try await withServer { _, client in
            for (uri, method) in [
                ("/filters/stem_activation?count=2&steps=1", "book"),
                ("/filters/top_activation?count=2&steps=1", "lucid"),
                ("/filters/top_activation?count=2&steps=1&method=auto", "lucid"),
                ("/filters/top_activation/0?steps=1", "book"),
                ("/filters/top_activation/0?steps=1&method=auto", "lucid"),
            ] {
                let r = try await client.get(uri)
                #expect(r.status == .ok, "\(uri): \(r.text)")
                #expect(r.header("X-Method") == method, "\(uri)")
                let again = try await client.get(uri)
                #expect(again.header("X-Cache") == "hit" && again.header("X-Method") == method, "\(uri), cached")
            }
            // auto and the method it resolves to are one picture, one cache entry.
            let auto = try await client.get("/filters/top_activation?count=2&steps=1")
            let lucid = try await client.get("/filters/top_activation?count=2&steps=1&method=lucid")
            #expect(lucid.header("X-Cache") == "hit" && lucid.headers[.eTag] == auto.headers[.eTag])
        }
    }
}
