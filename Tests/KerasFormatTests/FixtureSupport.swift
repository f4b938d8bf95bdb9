import Engine
import Foundation
@testable import KerasFormat

/// Tests/Fixtures/keras, next to this test target.
let fixtureDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/keras")

/// One entry of Tests/Fixtures/keras/manifest.json (written by tools/make_fixtures.py).
struct FixtureCase: Decodable, Sendable, CustomStringConvertible {
    struct Gradients: Decodable, Sendable {
        let output_index: Int
        let pre_softmax: Bool
        let wrt: [String: String]
    }
    let kind: String
    let name: String
    let model: String
    let format: String
    let input: String?
    let output: String?
    let activations: [String: String]?
    let gradients: Gradients?
    let layers: [String]?
    let expect_error_contains: String?
    let expect_error_contains_all: [String]?

    var description: String { name }
    var modelURL: URL { fixtureDirectory.appendingPathComponent(model) }
    func url(_ file: String) -> URL { fixtureDirectory.appendingPathComponent(file) }
}

enum Fixtures {
    static let manifestURL = fixtureDirectory.appendingPathComponent("manifest.json")

    static func load() throws -> [FixtureCase] {
        try JSONDecoder().decode([FixtureCase].self, from: Data(contentsOf: manifestURL))
    }

    /// Empty when the manifest is missing; `manifestIsPresent` fails then.
    static let all: [FixtureCase] = (try? load()) ?? []
    static var ok: [FixtureCase] { all.filter { $0.kind == "ok" } }
    static var bad: [FixtureCase] { all.filter { $0.kind == "bad" } }
}

/// max|ours − keras| ≤ 1e-4 × (1 + max|keras|).
func closeEnough(_ ours: Tensor, _ keras: Tensor) -> (ok: Bool, diff: Float, bound: Float) {
    guard ours.shape == keras.shape else { return (false, .infinity, 0) }
    let diff = ours.maxAbsDifference(keras)
    let bound = 1e-4 * (1 + keras.maxAbs)
    return (diff <= bound, diff, bound)
}
