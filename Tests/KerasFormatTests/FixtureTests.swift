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
