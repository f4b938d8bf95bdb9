import Foundation
import KerasFormat
import TestSupport
import Testing

/// Replays Tests/Fixtures/fuzz/keras-config/ (see scripts/fuzz) through the model-config
/// parser as the `keras-config` fuzz target does: a model spec, or a `KerasFormatError`.
/// A crash fails the run.
@Suite struct KerasConfigFuzzRegressionTests {
    static let dir = FuzzInputs.directory("keras-config")
    /// Includes crash-json5-invalid-utf8.json, which the fuzzer found: `{"a":1,` 0xFF ` "b": true}`
    /// made Foundation's JSON5 reader trap (`JSON.parse` retried a refused document with
    /// `allowsJSON5`); it is now refused as not UTF-8.
    static var inputs: [String] { FuzzInputs.names("keras-config") }

    @Test func thereAreInputs() {
        #expect(Self.inputs.count >= 3)
        #expect(Self.inputs.contains("crash-json5-invalid-utf8.json"))
    }

    @Test(arguments: inputs)
    func replay(_ name: String) throws {
        try Self.parse(name)
    }

    static func parse(_ name: String) throws {
        let data = try Data(contentsOf: dir.appendingPathComponent(name))
        do {
            #expect(try KerasConfigFuzzing.parseModelConfig(data) >= 0)
        } catch {
            #expect(error is KerasFormatError, "\(name): \(error)")
        }
    }
}
