import Foundation
import Testing

@testable import Imaging

@Suite struct DecodeTests {
    @Test(arguments: manifest.decode.map(\.input))
    func decodesFixture(_ input: String) throws {
        let c = try #require(manifest.decode.first { $0.input == input })
        let (image, info) = try decodeImageWithInfo(fixtureData(input))
        #expect([image.height, image.width, image.channels] == c.shape, "\(c.note)")
        let expected = try fixtureU8(c.expected)
        #expect(image.pixels.count == expected.count)
        guard image.pixels.count == expected.count else { return }
        let diff = maxAbsDiff(image.pixels, expected)
        #expect(diff <= c.tolerance, "\(input): max |Δ| = \(diff) (\(c.note))")
        #expect(info.format == (input.hasSuffix(".png") ? .png : .jpeg))
        #expect(info.isCMYK == input.contains("cmyk"))
        #expect(info.isProgressive == input.contains("progressive"))
    }

    @Test func sourceChannelsReported() throws {
        let cases: [(String, Int)] = [
            ("grey8.png", 1), ("greyalpha8.png", 2), ("rgb8.png", 3), ("rgba8.png", 4),
            ("palette.png", 3), ("palette_trns.png", 4), ("grey16.png", 1), ("rgba16.png", 4),
            ("grey.jpg", 1), ("baseline.jpg", 3), ("cmyk_pillow.jpg", 3),
        ]
        for (name, channels) in cases {
            let info = try decodeImageWithInfo(fixtureData(name)).info
            #expect(info.sourceChannels == channels, "\(name)")
        }
    }

    @Test(arguments: manifest.bad.map(\.input))
    func rejectsBadFile(_ input: String) throws {
        let c = try #require(manifest.bad.first { $0.input == input })
        do {
            let image = try decodeImage(fixtureData(input))
            Issue.record("\(input) decoded to \(image.width)x\(image.height); expected \(c.error) (\(c.note))")
        } catch let error as ImagingError {
            switch (c.error, error) {
            case ("corrupt", .corrupt(let detail)):
                #expect(!detail.isEmpty)
            case ("notAnImage", .notAnImage): break
            default: Issue.record("\(input): got \(error), expected \(c.error)")
            }
        }
    }

    @Test func truncatedJPEGFailsBecauseOfWarnings() throws {
        // libjpeg-turbo "succeeds" on this file with warnings; we must refuse it.
        do {
            let image = try decodeImage(fixtureData("bad_truncated_7of8.jpg"))
            Issue.record("truncated JPEG decoded to \(image.width)x\(image.height)")
        } catch ImagingError.corrupt(let detail) {
            #expect(detail.contains("warning") && detail.contains("Premature end"), "\(detail)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test(arguments: manifest.limit.map(\.input))
    func refusesDeclaredHugeImage(_ input: String) throws {
        let c = try #require(manifest.limit.first { $0.input == input })
        #expect(throws: ImagingError.tooManyPixels(width: c.width, height: c.height, limit: 50_000_000)) {
            try decodeImage(fixtureData(input))
        }
    }

    @Test func pixelLimitIsInclusive() throws {
        // 23×17 = 391 pixels
        for name in ["rgb8.png", "rgba16_interlaced.png"] {
            #expect(try decodeImage(fixtureData(name), maxPixels: 391).width == 23)
            #expect(throws: ImagingError.tooManyPixels(width: 23, height: 17, limit: 390)) {
                try decodeImage(fixtureData(name), maxPixels: 390)
            }
        }
        // 40×30 JPEG
        #expect(try decodeImage(fixtureData("baseline.jpg"), maxPixels: 1200).height == 30)
        #expect(throws: ImagingError.tooManyPixels(width: 40, height: 30, limit: 1199)) {
            try decodeImage(fixtureData("baseline.jpg"), maxPixels: 1199)
        }
        let message = ImagingError.tooManyPixels(width: 40, height: 30, limit: 1199).description
        #expect(message.contains("40x30") && message.contains("1199"))
    }

    @Test func detectsFormatByMagicNotName() throws {
        #expect(ImageFormat.detect(try fixtureData("rgb8.png")) == .png)
        #expect(ImageFormat.detect(try fixtureData("baseline.jpg")) == .jpeg)
        #expect(ImageFormat.detect(Data([0x89, 0x50, 0x4E])) == nil)
        // a PNG saved under a .jpg name decodes as PNG
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-imaging-\(UUID().uuidString).jpg")
        try fixtureData("rgb8.png").write(to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let (img, info) = try decodeImageWithInfo(Data(contentsOf: tmp))
        #expect(info.format == .png && img.width == 23)
    }

    @Test func layouts() throws {
        let data = try fixtureData("rgba8.png")
        let rgba = try decodeImage(data, options: DecodeOptions(layout: .rgba))
        #expect(rgba.channels == 4)
        // first row of the fixture is fully transparent, second opaque
        #expect(rgba[0, 0, 3] == 0 && rgba[5, 1, 3] == 255)
        let onWhite = try decodeImage(data)
        #expect(onWhite.pixel(x: 3, y: 0) == [255, 255, 255])
        let onBlack = try decodeImage(data, options: DecodeOptions(layout: .rgb, background: (0, 0, 0)))
        #expect(onBlack.pixel(x: 3, y: 0) == [0, 0, 0])
        #expect(onBlack.pixel(x: 3, y: 1) == Array(rgba.pixel(x: 3, y: 1).prefix(3)))
        // compositing formula on a half-transparent pixel
        for i in 0..<(rgba.width * rgba.height) {
            let a = Int(rgba.pixels[4 * i + 3])
            let c = Int(rgba.pixels[4 * i])
            #expect(Int(onBlack.pixels[3 * i]) == (c * a + 127) / 255)
            #expect(Int(onWhite.pixels[3 * i]) == (c * a + 255 * (255 - a) + 127) / 255)
        }
        // .grey of an RGB file = Pillow's convert("L") (the fixture resize_src_grey.png was made that way)
        let grey = try decodeImage(fixtureData("resize_src.png"), options: DecodeOptions(layout: .grey))
        let pillowGrey = try decodeImage(fixtureData("resize_src_grey.png"), options: DecodeOptions(layout: .grey))
        #expect(grey.channels == 1 && grey.pixels == pillowGrey.pixels)
        // grey JPEG stays 1 channel in .grey layout
        #expect(try decodeImage(fixtureData("grey.jpg"), options: DecodeOptions(layout: .grey)).channels == 1)
    }

    @Test(arguments: manifest.exif.map(\.input))
    func exifOrientation(_ input: String) throws {
        let c = try #require(manifest.exif.first { $0.input == input })
        let (image, info) = try decodeImageWithInfo(fixtureData(input))
        #expect(info.exifOrientation == c.orientation)
        #expect([image.height, image.width, image.channels] == c.shape)
        #expect(image.pixels == (try fixtureU8(c.expected)), "\(input) vs PIL exif_transpose")
        // upright marker: the red block is top-left after orientation
        #expect(image[1, 1, 0] > 200 && image[1, 1, 1] < 60)
        if let stored = c.stored, let shape = c.stored_shape {
            let raw = try decodeImage(fixtureData(input), options: DecodeOptions(applyEXIFOrientation: false))
            #expect([raw.height, raw.width, raw.channels] == shape)
            #expect(raw.pixels == (try fixtureU8(stored)))
        }
    }

    @Test func exifParserIsDefensive() {
        #expect(Imaging.exifOrientation(tiff: []) == nil)
        #expect(Imaging.exifOrientation(tiff: Array("II*\0".utf8)) == nil)
        // IFD offset far outside the block
        #expect(Imaging.exifOrientation(tiff: [0x49, 0x49, 42, 0, 0xFF, 0xFF, 0xFF, 0x7F]) == nil)
        // one entry claiming orientation 9 (invalid)
        let bad: [UInt8] = [0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 9, 0, 0, 0]
        #expect(Imaging.exifOrientation(tiff: bad) == nil)
        var good = bad
        good[18] = 3
        #expect(Imaging.exifOrientation(tiff: good) == 3)
        // entry count larger than the data
        var truncated = good
        truncated[8] = 200
        #expect(Imaging.exifOrientation(tiff: Array(truncated.prefix(22))) == 3)
        #expect(Imaging.exifOrientation(tiff: Array(good.prefix(15))) == nil)
    }

    @Test func orientationTransformsCompose() throws {
        let img = try Image(width: 3, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6])
        #expect(img.oriented(exif: 1) == img)
        #expect(img.oriented(exif: 2).pixels == [3, 2, 1, 6, 5, 4])
        #expect(img.oriented(exif: 3).pixels == [6, 5, 4, 3, 2, 1])
        #expect(img.oriented(exif: 4).pixels == [4, 5, 6, 1, 2, 3])
        let r6 = img.oriented(exif: 6)  // 90° clockwise
        #expect(r6.width == 2 && r6.height == 3 && r6.pixels == [4, 1, 5, 2, 6, 3])
        let r8 = img.oriented(exif: 8)  // 90° counter-clockwise
        #expect(r8.pixels == [3, 6, 2, 5, 1, 4])
        #expect(img.oriented(exif: 5).pixels == [1, 4, 2, 5, 3, 6])
        #expect(img.oriented(exif: 7).pixels == [6, 3, 5, 2, 4, 1])
    }
}

@Suite struct KerasLikeDecodeTests {
    @Test func discardAlphaIsPillowConvertRGB() throws {
        let data = try fixtureData("rgba8.png")
        let rgba = try decodeImage(data, options: DecodeOptions(layout: .rgba))
        let dropped = try decodeImage(data, options: .kerasLike())
        #expect(dropped.channels == 3)
        for i in 0..<(rgba.width * rgba.height) {
            #expect(Array(dropped.pixels[(3 * i)..<(3 * i + 3)]) == Array(rgba.pixels[(4 * i)..<(4 * i + 3)]))
        }
        // row 0 is fully transparent: composited it is white, dropped it keeps the colour
        #expect(try decodeImage(data).pixel(x: 2, y: 0) == [255, 255, 255])
        #expect(dropped.pixel(x: 2, y: 0) == Array(rgba.pixel(x: 2, y: 0).prefix(3)))
        // grey+alpha → grey replicated
        let la = try decodeImage(fixtureData("greyalpha8.png"), options: .kerasLike())
        let g = try decodeImage(fixtureData("greyalpha8.png"), options: DecodeOptions(layout: .rgba))
        #expect(la.pixel(x: 4, y: 0) == [g[4, 0, 0], g[4, 0, 0], g[4, 0, 0]])
        // EXIF ignored
        #expect(try decodeImage(fixtureData("exif_orientation_6.jpg"), options: .kerasLike()).width == 16)
    }

    @Test func floatToImageQuantization() throws {
        let f = try FloatImage(width: 5, height: 1, channels: 1, values: [-3, 2.5, 3.5, 254.9, 300])
        #expect(try f.toImage().pixels == [0, 2, 3, 254, 255])
        #expect(try f.toImage(.clipRound).pixels == [0, 2, 4, 255, 255])
    }
}

@Suite struct KerasLoadImgTests {
    @Test(arguments: manifest.keras_load_img.map(\.input))
    func matchesKerasLoadImg(_ input: String) throws {
        let c = try #require(manifest.keras_load_img.first { $0.input == input })
        let image = try decodeImage(fixtureData(input), options: .kerasLike())
        #expect([image.height, image.width, image.channels] == c.shape)
        let expected = try fixtureU8(c.expected)
        #expect(image.pixels.count == expected.count)
        if image.pixels.count == expected.count {
            // 16-bit samples by their high byte, as Pillow: exactly.
            #expect(maxAbsDiff(image.pixels, expected) == 0, "\(input)")
        }
    }
}
