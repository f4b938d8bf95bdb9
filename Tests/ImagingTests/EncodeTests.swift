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
