import Foundation
import Testing

@testable import Imaging

@Suite struct EncodeTests {
    @Test(arguments: [1, 3, 4])
    func pngRoundTrip(channels: Int) throws {
        var rng = SystemRandomNumberGenerator()
        let w = 31
        let h = 7
        let pixels = (0..<(w * h * channels)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let image = try Image(width: w, height: h, channels: channels, pixels: pixels)
        let png = try encodePNG(image)
        #expect(ImageFormat.detect(png) == .png)
        let fastPNG = try encodePNG(image, fast: true)
        #expect(try decodeImage(fastPNG, options: DecodeOptions(layout: channels == 1 ? .grey : (channels == 3 ? .rgb : .rgba))) == image)
        let layout: DecodedLayout = channels == 1 ? .grey : (channels == 3 ? .rgb : .rgba)
        let (back, info) = try decodeImageWithInfo(png, options: DecodeOptions(layout: layout))
        #expect(info.sourceChannels == channels)
        #expect(back == image)
    }

    /// Bands that make each PNG filter type the best for some rows (flat, vertical and
    /// horizontal ramps, a diagonal, edges, noise), so the per-row choice of the default
    /// mode reaches all five; libpng reads them back (it checks every chunk's CRC and
    /// zlib's Adler-32), pixel for pixel.
    @Test(arguments: [1, 3, 4])
    func pngFiltersRoundTripOnStructuredImages(channels: Int) throws {
        let w = 97
        let h = 60
        var pixels = [UInt8](repeating: 0, count: w * h * channels)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<channels {
                    let v: Int
                    switch y / 10 {
                    case 0: v = 200
                    case 1: v = x * 2 + c
                    case 2: v = y * 4 + c * 9
                    case 3: v = (x + y) * 3
                    case 4: v = (x / 8 + y / 3) % 2 == 0 ? 20 : 230
                    // Noise: a multiplicative hash of the position (Knuth's constant).
                    default: v = Int(truncatingIfNeeded: (UInt32(x * 31 + y * 7919 + c) &* 2_654_435_761) >> 24)
                    }
                    pixels[(y * w + x) * channels + c] = UInt8(truncatingIfNeeded: v)
                }
            }
        }
        let image = try Image(width: w, height: h, channels: channels, pixels: pixels)
        let layout: DecodedLayout = channels == 1 ? .grey : (channels == 3 ? .rgb : .rgba)
        for fast in [false, true] {
            let png = try encodePNG(image, fast: fast)
            #expect(try decodeImage(png, options: DecodeOptions(layout: layout)) == image, "fast: \(fast)")
        }
    }

    /// A vertical ramp is all zeros after the Up filter: the fast mode must compress it to a
    /// small fraction of its raw size (unfiltered it would not), and the default mode at
    /// least as well.
    @Test func smoothImagesCompress() throws {
        let w = 256
        let h = 256
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 { pixels[(y * w + x) * 3 + c] = UInt8((x * 7 + y * (c + 1)) & 255) }
            }
        }
        let image = try Image(width: w, height: h, channels: 3, pixels: pixels)
        let fast = try encodePNG(image, fast: true)
        let small = try encodePNG(image)
        #expect(fast.count < w * h * 3 / 20, "fast: \(fast.count) bytes")
        #expect(small.count <= fast.count, "default \(small.count) vs fast \(fast.count) bytes")
    }

    @Test func decodesFixtureAndReencodesIdentically() throws {
        let image = try decodeImage(fixtureData("palette_trns.png"), options: DecodeOptions(layout: .rgba))
        let again = try decodeImage(encodePNG(image), options: DecodeOptions(layout: .rgba))
        #expect(again == image)
    }

    @Test func emptyImageIsRejected() throws {
        let empty = try Image(width: 0, height: 0, channels: 3, pixels: [])
        #expect(throws: ImagingError.self) { try encodePNG(empty) }
    }

    @Test func imageInitValidates() {
        #expect(throws: ImagingError.self) { try Image(width: 2, height: 2, channels: 3, pixels: [0, 1]) }
        #expect(throws: ImagingError.self) { try Image(width: 1, height: 1, channels: 2, pixels: [0, 1]) }
    }
}
