import Foundation
import HTTPTypes
import Server
import Testing
import Yams

/// public/openapi.yaml says what the server enforces: every integer parameter has its
/// maximum, the filter/channel maximum is the bundled model's widest layer, the request
/// body lists what the upload reader takes, and every documented path answers an unknown
/// method with 405 and an `Allow` that lists the documented methods.
@Suite(.timeLimit(.minutes(5))) struct OpenAPIHardeningTests {
    static func document() throws -> [String: Any] {
        let text = try String(contentsOf: root.appendingPathComponent("public/openapi.yaml"), encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    /// Every parameter of every operation, with `$ref`s to components resolved.
    static func parameters(_ doc: [String: Any]) throws -> [(operation: String, name: String, schema: [String: Any])] {
        let components = try #require((doc["components"] as? [String: Any])?["parameters"] as? [String: [String: Any]])
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        var out: [(String, String, [String: Any])] = []
        for (path, item) in paths {
            let shared = item["parameters"] as? [[String: Any]] ?? []
            for (method, op) in item where method != "parameters" {
                for p in shared + ((op as? [String: Any])?["parameters"] as? [[String: Any]] ?? []) {
                    var parameter = p
                    if let ref = p["$ref"] as? String {
                        parameter = try #require(components[String(ref.split(separator: "/").last!)], "\(ref)")
                    }
                    out.append(
                        (
                            "\(method.uppercased()) \(path)", parameter["name"] as? String ?? "?",
                            parameter["schema"] as? [String: Any] ?? [:]
                        ))
                }
            }
        }
        return out
    }

    @Test func everyIntegerParameterHasTheMaximumTheServerEnforces() async throws {
        let doc = try Self.document()
        let parameters = try Self.parameters(doc)
        let integers = parameters.filter { $0.schema["type"] as? String == "integer" }
        #expect(integers.count >= 10)
        for p in integers {
            #expect(p.schema["maximum"] != nil, "\(p.operation) \(p.name) has no maximum")
            #expect(p.schema["minimum"] != nil, "\(p.operation) \(p.name) has no minimum")
        }
        let perLayer = integers.filter { ["index", "first", "channel"].contains($0.name) }
        #expect(perLayer.count == 4)  // index of /filters/{layer}/{index} and of its /examples, first, channel
        let documentedMaxima = perLayer.map { "\($0.operation) \($0.name)=\($0.schema["maximum"] as? Int ?? -1)" }
        try await withServer { _, client in
            let model = try await client.get("/api/model").json()
            let layers = try #require(model["layers"] as? [[String: Any]])
            let widest = try #require(
                layers.compactMap { l in (l["filters"] as? Int).map { (l["name"] as! String, $0) } }.max { $0.1 < $1.1 })
            for m in documentedMaxima {
                #expect(m.hasSuffix("=\(widest.1 - 1)"), "\(m): the widest layer is \(widest)")
            }
            // The server takes the documented maximum and refuses one more.
            let last = try await client.get("/filters/\(widest.0)/\(widest.1 - 1)?steps=1&wait=0")
            #expect(last.status == .accepted || last.status == .ok, "\(last.status) \(last.text.prefix(200))")
            let past = try await client.get("/filters/\(widest.0)/\(widest.1)?steps=1&wait=0")
            #expect(past.status == .notFound)
            // Documented fixed maxima match the server's answers at and past them.
            for (uri, ok) in [
                ("/filters/stem_activation/0?steps=1000&wait=0", true), ("/filters/stem_activation/0?steps=1001&wait=0", false),
                ("/filters/stem_activation?count=256&steps=1&wait=0", true), ("/filters/stem_activation?count=257&wait=0", false),
                ("/filters/stem_activation/0?seed=4294967295&steps=1&wait=0", true),
                ("/filters/stem_activation/0?seed=4294967296&wait=0", false),
            ] {
                let r = try await client.get(uri)
                #expect((r.status == .badRequest) == !ok, "\(uri): \(r.status)")
            }
        }
    }

    @Test func theImageBodyListsWhatTheServerAccepts() throws {
        let doc = try Self.document()
        let bodies = try #require((doc["components"] as? [String: Any])?["requestBodies"] as? [String: [String: Any]])
        let content = try #require(bodies["Image"]?["content"] as? [String: [String: Any]])
        #expect(Set(content.keys) == ["image/png", "image/jpeg", "application/octet-stream", "multipart/form-data"])
        let form = try #require(content["multipart/form-data"]?["schema"] as? [String: Any])
        #expect(form["required"] as? [String] == ["image"])
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        for path in ["/heatmap", "/activations", "/api/predict"] {
            let post = try #require(paths[path]?["post"] as? [String: Any])
            let ref = (post["requestBody"] as? [String: Any])?["$ref"] as? String
            #expect(ref == "#/components/requestBodies/Image", "\(path)")
        }
    }

    @Test func everyDocumentedPathAnswersAnUnknownMethodWith405AndItsMethods() async throws {
        let doc = try Self.document()
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        let documented = paths.map { path, item in (path, Set(item.keys.filter { $0 != "parameters" }.map { $0.uppercased() })) }
            .sorted { $0.0 < $1.0 }
        try await withServer { _, client in
            for (path, methods) in documented {
                let uri = path.replacingOccurrences(of: "{layer}", with: "stem_conv").replacingOccurrences(of: "{index}", with: "0")
                    .replacingOccurrences(of: "{id}", with: "0123456789abcdef")
                let r = try await rawExchange(port: client.port, Data("TRACE \(uri) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
                #expect(r.status == 405, "TRACE \(uri): \(r.head)")
                let allow = Set((r.header("Allow") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                #expect(methods.isSubset(of: allow), "TRACE \(uri): Allow \(allow) lacks some of \(methods)")
                #expect(allow.subtracting(methods).isSubset(of: ["HEAD"]), "TRACE \(uri): Allow \(allow) vs documented \(methods)")
            }
        }
    }
}
