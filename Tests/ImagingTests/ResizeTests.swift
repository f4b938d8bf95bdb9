import Foundation
import Testing

@testable import Imaging

@Suite struct ResizeTests {
    static let cases = manifest.resize.map(\.expected)

    @Test(arguments: cases)
    func bitExactVsPillow(_ expectedFile: String) throws {
        let c = try #require(manifest.resize.first { $0.expected == expectedFile })
        let layout: DecodedLayout = c.input.contains("grey") ? .grey : (c.input.hasPrefix("rgba") ? .rgba : .rgb)
        let src = try decodeImage(fixtureData(c.input), options: DecodeOptions(layout: layout))
        let box = c.box.map { PixelBox(x0: $0[0], y0: $0[1], x1: $0[2], y1: $0[3]) }
        let out = try src.resized(width: c.width, height: c.height, filter: c.filter == "nearest" ? .nearest : .bilinear, box: box)
        #expect([out.height, out.width, out.channels] == (c.shape.count == 2 ? c.shape + [1] : c.shape))
        let expected = try fixtureU8(c.expected)
        let mismatches = zip(out.pixels, expected).filter { $0 != $1 }.count
        #expect(mismatches == 0, "\(expectedFile): \(mismatches) samples differ, max |Δ| \(maxAbsDiff(out.pixels, expected))")
    }

    @Test func kerasHelperMatchesKerasLoadImg() throws {
        // the fixture script asserted keras.utils.load_img(target_size=(12, 16)[, keep_aspect_ratio]) == these files
        let src = try decodeImage(fixtureData("resize_src.png"))
        let plain = try src.resizedLikeKeras(width: 16, height: 12)
        #expect(plain.pixels == (try fixtureU8("resize_src.nearest.16x12.u8")))
        let keep = try src.resizedLikeKeras(width: 16, height: 12, keepAspectRatio: true)
        #expect(keep.pixels == (try fixtureU8("resize_src.nearest.16x12.keep.u8")))
        #expect(
            Image.kerasCentreCropBox(width: 37, height: 29, targetWidth: 16, targetHeight: 12) == PixelBox(x0: 0, y0: 1, x1: 37, y1: 28))
    }

    @Test func nearestPicksCentreSamples() throws {
        // 4 → 2: a = 2, samples x = Int(1 + 2k) = 1, 3
        let img = try Image(width: 4, height: 1, channels: 1, pixels: [10, 20, 30, 40])
        #expect(try img.resized(width: 2, height: 1, filter: .nearest).pixels == [20, 40])
        // 2 → 5 upsampling: a = 0.4, positions 0.2, 0.6, 1.0, 1.4, 1.8 → 0 0 1 1 1
        let two = try Image(width: 2, height: 1, channels: 1, pixels: [1, 2])
        #expect(try two.resized(width: 5, height: 1, filter: .nearest).pixels == [1, 1, 2, 2, 2])
    }

    @Test func bilinearShrinkAverages() throws {
        // 4 → 1 with support 4: triangle weights 1,3,3,1 (/8) over the row
        let img = try Image(width: 4, height: 1, channels: 1, pixels: [0, 80, 160, 240])
        let out = try img.resized(width: 1, height: 1, filter: .bilinear)
        #expect(out.pixels == [120])
        // a constant image stays constant at any size
        let flat = Image(width: 9, height: 7, channels: 3, fill: [200, 10, 77])
        for (w, h) in [(3, 2), (20, 30), (9, 1)] {
            let r = try flat.resized(width: w, height: h, filter: .bilinear)
            #expect(r.pixels == Image(width: w, height: h, channels: 3, fill: [200, 10, 77]).pixels)
        }
    }

    @Test func argumentsAreChecked() throws {
        let img = Image(width: 5, height: 5, channels: 1)
        #expect(throws: ImagingError.self) { try img.resized(width: 0, height: 3) }
        #expect(throws: ImagingError.self) { try img.resized(width: 3, height: 3, box: PixelBox(x0: 0, y0: 0, x1: 6, y1: 5)) }
        #expect(try img.resized(width: 5, height: 5) == img)
    }

    @Test func cropAndCentreCrop() throws {
        let img = try Image(width: 4, height: 2, channels: 1, pixels: [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(try img.cropped(to: PixelBox(x0: 1, y0: 0, x1: 3, y1: 2)).pixels == [1, 2, 5, 6])
        let sq = try img.centreCropped(aspectWidth: 1, aspectHeight: 1)
        #expect(sq.width == 2 && sq.height == 2 && sq.pixels == [1, 2, 5, 6])
    }

    @Test(arguments: manifest.upsample.map(\.expected))
    func floatBilinearVsTensorFlow(_ expectedFile: String) throws {
        let c = try #require(manifest.upsample.first { $0.expected == expectedFile })
        let input = try fixtureF32(c.input)
        let out = try upsampleBilinear(input, width: c.in_shape[1], height: c.in_shape[0], toWidth: c.width, toHeight: c.height)
        let expected = try fixtureF32(c.expected)
        #expect(out.count == expected.count)
        let d = maxAbsDiff(out, expected)
        #expect(d <= 1e-6, "\(expectedFile): max |Δ| \(d)")
    }
}
