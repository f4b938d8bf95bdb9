import Foundation
import HTTPTypes
import Server
import Testing
import Visualization
import Yams

/// public/openapi.yaml against the router: every route is documented, and every
/// documented operation answers (not 404/405) on a live server.
@Suite(.timeLimit(.minutes(5))) struct OpenAPITests {
    @Test func everyRouteIsDocumentedAndEveryDocumentedOperationAnswers() async throws {
        let text = try String(contentsOf: root.appendingPathComponent("public/openapi.yaml"), encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        #expect((doc["openapi"] as? String)?.hasPrefix("3.1") == true)
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        var documented = Set<String>()
        for (path, operations) in paths {
            for method in operations.keys where ["get", "post", "put", "delete", "patch"].contains(method) {
                documented.insert("\(method.uppercased()) \(path)")
            }
        }
        let registered = RegisteredRoutes()
        let operations = documented.sorted()
        let documentedSet = documented
        try await withServer(registered: { registered.set($0) }) { _, client in
            let routes = Set(
                registered.get().map { route in
                    // The router's ":name" is OpenAPI's "{name}".
                    route.replacing(/:([a-z]+)/) { "{\($0.1)}" }
                })
            #expect(!routes.isEmpty)
            let undocumented = routes.subtracting(documentedSet)
            #expect(undocumented.isEmpty, "routes missing from openapi.yaml: \(undocumented.sorted())")
            // The one documented extra is the gallery page, served by the static-file middleware.
            let extras = documentedSet.subtracting(routes)
            #expect(extras == ["GET /"], "\(extras.sorted())")

            let photo = try sample("chelsea.png")
            let job = try await client.get("/filters/stem_activation/0?steps=2&wait=0")
            let jobID = String(try #require(job.headers[.location]).dropFirst("/jobs/".count))
            for operation in operations {
                let parts = operation.split(separator: " ", maxSplits: 1)
                let method = HTTPRequest.Method(String(parts[0]))!
                let uri =
                    String(parts[1]).replacingOccurrences(of: "{layer}", with: "stem_activation")
                    .replacingOccurrences(of: "{index}", with: "1").replacingOccurrences(of: "{id}", with: jobID)
                    + (parts[1].hasPrefix("/filters") ? "?steps=1&wait=0" : "")
                let r =
                    method == .post
                    ? try await client.post(uri, image: photo)
                    : try await client.execute(uri: uri, method: method)
                #expect(
                    r.status != .notFound && r.status != .methodNotAllowed && r.status.code < 500,
                    "\(operation) → \(r.status) \(r.text.prefix(200))")
            }
        }
    }
}

@Test func theSpecListsEveryHeatmapMethod() throws {
    let text = try String(contentsOf: root.appendingPathComponent("public/openapi.yaml"), encoding: .utf8)
    let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
    let paths = try #require(doc["paths"] as? [String: [String: Any]])
    let post = try #require(paths["/heatmap"]?["post"] as? [String: Any])
    let parameters = try #require(post["parameters"] as? [[String: Any]])
    let method = try #require(parameters.first { $0["name"] as? String == "method" })
    let schema = try #require(method["schema"] as? [String: Any])
    #expect(schema["enum"] as? [String] == CAMMethod.allCases.map(\.rawValue))
    #expect(parameters.contains { $0["name"] as? String == "post_activation" })
}

final class RegisteredRoutes: @unchecked Sendable {
    private let lock = NSLock()
    private var routes: [String] = []
    func set(_ r: [String]) { lock.withLock { routes = r } }
    func get() -> [String] { lock.withLock { routes } }
}
