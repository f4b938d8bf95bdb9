import Foundation
import Imaging
import TestSupport
import Testing

/// Replays Tests/Fixtures/fuzz/image/ (inputs the `image` fuzz target found or was seeded
/// with; see scripts/fuzz) through what the fuzz target does: each decodes within the
/// pixel limit or throws an `ImagingError`. A crash fails the run.
@Suite struct ImageFuzzRegressionTests {
    static let dir = FuzzInputs.directory("image")
    static var inputs: [String] { FuzzInputs.names("image") }

    @Test func thereAreInputs() { #expect(Self.inputs.count >= 5) }

    @Test(arguments: inputs)
    func replay(_ name: String) throws {
        let data = try Data(contentsOf: Self.dir.appendingPathComponent(name))
        for options in [
            DecodeOptions(maxPixels: 1 << 16), .kerasLike(maxPixels: 1 << 16),
            DecodeOptions(maxPixels: 1 << 16, layout: .rgba, applyEXIFOrientation: true),
        ] {
            do {
                let (image, info) = try decodeImageWithInfo(data, options: options)
                #expect(image.width * image.height <= 1 << 16)
                #expect(info.storedWidth * info.storedHeight <= 1 << 16)
            } catch {
                #expect(error is ImagingError, "\(name): \(error)")
            }
        }
    }
}
