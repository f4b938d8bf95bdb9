import Foundation
import Testing

@testable import Imaging

/// xorshift64, deterministic
struct XorShift: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

@Suite struct RobustnessTests {
    /// Byte flips and truncations of valid files: every decode either succeeds with a
    /// consistent image or throws an ImagingError — never crashes or returns garbage sizes.
    @Test(arguments: [
        "baseline.jpg", "progressive.jpg", "cmyk_magick.jpg", "exif_orientation_5.jpg",
        "rgb8.png", "palette_trns.png", "rgba16_interlaced.png", "grey2bit.png",
    ])
    func mutatedFilesNeverCrash(_ name: String) throws {
        let original = [UInt8](try fixtureData(name))
        var rng = XorShift(state: 0x9E3779B97F4A7C15 ^ UInt64(name.utf8.count))
        var failures = 0
        var successes = 0
        for _ in 0..<150 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                // keep the magic so the codec (not the sniffer) sees the damage
                let i = Int.random(in: 3..<bytes.count, using: &rng)
                bytes[i] = UInt8.random(in: 0...255, using: &rng)
            }
            if Bool.random(using: &rng) { bytes = Array(bytes.prefix(Int.random(in: 8..<bytes.count, using: &rng))) }
            do {
                let image = try decodeImage(Data(bytes), options: DecodeOptions(maxPixels: 1 << 20))
                #expect(image.pixels.count == image.width * image.height * 3)
                successes += 1
            } catch is ImagingError {
                failures += 1
            }
        }
        #expect(failures + successes == 150)
        #expect(failures > 0, "no mutation of \(name) was detected as corrupt")
    }

    @Test func exifParserSurvivesRandomBytes() {
        var rng = XorShift(state: 42)
        let valid: [UInt8] = [0x4D, 0x4D, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]
        #expect(exifOrientation(tiff: valid) == 6)
        for _ in 0..<5000 {
            var b = valid
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            if let o = exifOrientation(tiff: b) { #expect((1...8).contains(o)) }
            let random = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if let o = exifOrientation(tiff: random) { #expect((1...8).contains(o)) }
        }
    }

    @Test func decodingIsThreadSafe() async throws {
        let jpeg = try fixtureData("progressive.jpg")
        let png = try fixtureData("rgba16_interlaced.png")
        let refJ = try decodeImage(jpeg)
        let refP = try decodeImage(png)
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<16 {
                group.addTask {
                    i % 2 == 0 ? try decodeImage(jpeg) == refJ : try decodeImage(png) == refP
                }
            }
            for try await same in group { #expect(same) }
        }
    }
}
