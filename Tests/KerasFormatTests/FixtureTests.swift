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

/// The layers of users' own models (tools/fixtures/make_layer_fixtures.py): the keras.io
/// tutorials' CNNs shrunk — augmentation inside, a nested base, a U-Net with transposed
/// convolutions and upsampling, Resizing/CenterCrop with every interpolation, merges, a grey
/// input — against Keras' numbers, and the classes refused by design with their reasons.
extension SerialTests {
    @Suite struct LayerFixtureTests {
        static let directory = fixtureDirectory.deletingLastPathComponent().appendingPathComponent("keras_layers")
        static let all: [FixtureCase] = (try? Fixtures.load(from: directory)) ?? []

        @Test func manifestIsPresent() throws {
            let all = try Fixtures.load(from: Self.directory)
            #expect(all.filter { $0.kind == "ok" }.count >= 20)
            #expect(all.contains { $0.kind == "bad" })
        }

        @Test(arguments: all.filter { $0.kind == "ok" })
        func loadsAndMatchesKeras(_ fixture: FixtureCase) throws {
            try checkAgainstKeras(fixture)
        }

        @Test(arguments: all.filter { $0.kind == "bad" })
        func refusedClassSaysWhy(_ fixture: FixtureCase) throws {
            #expect(throws: KerasFormatError.self) { try KerasModel.load(contentsOf: fixture.modelURL) }
            do {
                _ = try KerasModel.load(contentsOf: fixture.modelURL)
            } catch {
                for s in fixture.expect_error_contains_all ?? [] {
                    #expect("\(error)".contains(s), "\(fixture.name): error '\(error)' lacks '\(s)'")
                }
            }
        }
    }
}
