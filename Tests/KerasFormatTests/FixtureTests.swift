import Engine
import Foundation
import Testing
@testable import KerasFormat

/// Every committed Keras fixture (three file formats per case) against the
/// numbers Keras computed: output, per-layer activations, input gradients.
extension SerialTests {
@Suite struct FixtureTests {
    @Test func manifestIsPresent() throws {
        let all = try Fixtures.load()
        #expect(all.contains { $0.kind == "ok" })
        #expect(all.contains { $0.kind == "bad" })
        for format in KerasFileFormat.allCases {
            #expect(all.contains { $0.kind == "ok" && $0.format == format.rawValue }, "no fixture in format \(format.rawValue)")
        }
    }

    @Test(arguments: Fixtures.ok)
    func loadsAndMatchesKeras(_ fixture: FixtureCase) throws {
        try checkAgainstKeras(fixture)
    }

    /// Opt-in (KERAS_REFERENCE_DIR=OUT_DIR of tools/check_applications.py):
    /// full-size keras.applications models, not committed (~1.3 GB). Output,
    /// activations and gradients w.r.t. inner layers element-wise as above;
    /// the input gradient by relative L2 error ≤ 2 % (see `checkAgainstKeras`).
    @Test(.enabled(if: Fixtures.externalDirectory != nil), arguments: Fixtures.external)
    func fullSizeApplications(_ fixture: FixtureCase) throws {
        try checkAgainstKeras(fixture, deepInputGradientTolerance: 0.02)
    }

    @Test(arguments: Fixtures.bad)
    func badFileFailsClearly(_ fixture: FixtureCase) throws {
        do {
            let model = try KerasModel.load(contentsOf: fixture.modelURL)
            Issue.record("\(fixture.name) loaded (\(model.layers.count) layers) but must fail")
        } catch {
            let text = "\(error)"
            let wanted = (fixture.expect_error_contains.map { [$0] } ?? []) + (fixture.expect_error_contains_all ?? [])
            for s in wanted {
                #expect(text.contains(s), "\(fixture.name): error '\(text)' lacks '\(s)'")
            }
            #expect(error is KerasFormatError)
        }
    }
}
}
