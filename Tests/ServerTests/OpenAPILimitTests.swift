import Foundation
import HTTPTypes
import Server
import Testing
import Yams

/// Every numeric limit public/openapi.yaml gives a query parameter is the server's: the
/// bound itself is accepted, one step beyond it is refused naming the parameter (400, or
/// 404 out_of_range for an index of a narrower layer). schemathesis found `k` allowed to 64
/// by the schema and to 9 by the server.
@Suite(.timeLimit(.minutes(10))) struct OpenAPILimitTests {
    struct Limit {
        var operation: String
        var name: String
        var integer: Bool
        var minimum: Double
        var maximum: Double
    }

    /// The operations' query parameters with a minimum and a maximum (inline or `$ref`).
    func limits() throws -> [Limit] {
        let text = try String(contentsOf: root.appendingPathComponent("public/openapi.yaml"), encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        let shared = ((doc["components"] as? [String: Any])?["parameters"] as? [String: [String: Any]]) ?? [:]
        var found: [Limit] = []
        for (path, operations) in paths {
            for (method, body) in operations where ["get", "post"].contains(method) {
                let parameters = ((body as? [String: Any])?["parameters"] as? [[String: Any]]) ?? []
                for raw in parameters {
                    let p = (raw["$ref"] as? String).flatMap { shared[String($0.split(separator: "/").last ?? "")] } ?? raw
                    guard p["in"] as? String == "query", let name = p["name"] as? String,
                        let schema = p["schema"] as? [String: Any],
                        let minimum = (schema["minimum"] as? NSNumber)?.doubleValue,
                        let maximum = (schema["maximum"] as? NSNumber)?.doubleValue
                    else { continue }
                    found.append(
                        Limit(
                            operation: "\(method.uppercased()) \(path)", name: name, integer: schema["type"] as? String == "integer",
                            minimum: minimum, maximum: maximum))
                }
            }
        }
        // The waits first, while no other job is queued ahead of theirs.
        return found.sorted { ($0.name == "wait" ? 0 : 1, $0.operation, $0.name) < ($1.name == "wait" ? 0 : 1, $1.operation, $1.name) }
    }

    /// What each operation is asked besides the parameter under test: cheap choices, and a
    /// layer as wide as the schema's index maxima (the bundled model's widest).
    func uri(_ operation: String, _ name: String, _ value: String) -> String {
        let path = String(operation.split(separator: " ")[1])
        var base: [String: String]
        switch path {
        case "/filters/{layer}", "/filters/{layer}/{index}": base = ["steps": "1", "wait": "0"]
        case "/filters/{layer}/{index}/examples": base = ["wait": "0"]
        case "/heatmap/compare": base = ["methods": "gradcam", "metrics": "drop"]
        case "/activations": base = ["layer": "top_activation"]
        default: base = [:]
        }
        base[name] = value
        let layer = path.hasSuffix("/examples") ? "stem_activation" : "top_activation"
        let filled = path.replacingOccurrences(of: "{layer}", with: layer).replacingOccurrences(of: "{index}", with: "0")
        return filled + "?" + base.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
    }

    func text(_ value: Double, integer: Bool) -> String {
        integer ? String(Int64(value)) : String(value)
    }

    @Test func everyNumericLimitOfTheSchemaIsTheServers() async throws {
        let limits = try limits()
        #expect(limits.count >= 15, "\(limits.map(\.name))")
        #expect(limits.contains { $0.name == "k" && $0.maximum == 9 })
        let photo = try sample("chelsea.png")
        try await withServer { _, client in
            func ask(_ operation: String, _ uri: String) async throws -> Reply {
                operation.hasPrefix("POST") ? try await client.post(uri, image: photo) : try await client.get(uri)
            }
            for limit in limits {
                let step = limit.integer ? 1 : max(0.001, (limit.maximum - limit.minimum) / 1000)
                for bound in [limit.minimum, limit.maximum] {
                    let u = uri(limit.operation, limit.name, text(bound, integer: limit.integer))
                    let r = try await ask(limit.operation, u)
                    let named = r.status.code >= 400 && (try? r.error().detail.contains(limit.name)) == true
                    #expect(
                        r.status.code < 500 && !(r.status == .badRequest && named),
                        "\(limit.operation) \(u) → \(r.status) \(r.text.prefix(200))")
                }
                for beyond in [limit.minimum - step, limit.maximum + step] {
                    let u = uri(limit.operation, limit.name, text(beyond, integer: limit.integer))
                    let r = try await ask(limit.operation, u)
                    #expect(r.status == .badRequest || r.status == .notFound, "\(limit.operation) \(u) → \(r.status) \(r.text.prefix(200))")
                    let detail = (try? r.error().detail) ?? ""
                    #expect(detail.contains(limit.name) || detail.contains("'\(limit.name)'"), "\(limit.operation) \(u): \(detail)")
                }
            }
        }
    }
}

/// Numbers are decimal, and a coded upload is not read as an image.
@Suite(.timeLimit(.minutes(5))) struct StrictInputTests {
    @Test func hexadecimalAndNonFiniteNumbersAreRefusedNamingTheParameter() async throws {
        try await withServer { _, client in
            let photo = try sample("chelsea.png")
            for value in ["0x10", "0x1p4", "inf", "nan", "1e", ".", "+"] {
                let r = try await client.post("/heatmap?percentile=\(value)", image: photo)
                #expect(r.status == .badRequest, "percentile=\(value) → \(r.status)")
                #expect(try r.error().detail.contains("percentile"), "\(r.text)")
            }
            for value in ["0x1", "0x1p-3"] {
                let r = try await client.get("/filters/stem_activation/0?steps=1&wait=0&step=\(value)")
                #expect(r.status == .badRequest, "step=\(value) → \(r.status)")
            }
            let decimal = try await client.post("/heatmap?percentile=99.5", image: photo)
            #expect(decimal.status == .ok, "\(decimal.status) \(decimal.text.prefix(200))")
        }
    }

    @Test func aCodedUploadIs415() async throws {
        try await withServer { _, client in
            let photo = try sample("chelsea.png")
            for coding in ["gzip", "br", "identity, gzip"] {
                let r = try await client.post("/api/predict", image: photo, headers: [.contentEncoding: coding])
                #expect(r.status == .unsupportedMediaType, "\(coding) → \(r.status)")
                #expect(try r.error().code == "unsupported_encoding")
            }
            let plain = try await client.post("/api/predict", image: photo, headers: [.contentEncoding: "identity"])
            #expect(plain.status == .ok, "\(plain.status) \(plain.text.prefix(200))")
        }
    }
}
