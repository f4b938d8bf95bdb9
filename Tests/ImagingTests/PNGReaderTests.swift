import Foundation
import Testing

@testable import Imaging

/// ConvLens' PNG reader (8-bit, non-interlaced files without tRNS or gAMA) against libpng,
/// which reads everything else and is the reference: same pixels, same errors.
@Suite struct PNGReaderTests {
    /// The outcome of one decode: the image and what the decoder said, or the error's text.
    struct Outcome: Equatable {
        var text: String
        var pixels: [UInt8] = []
    }

    func outcome(_ data: Data, _ reader: PNGReader, layout: DecodedLayout) -> Outcome {
        do {
            let (image, info) = try decodeImageWithInfo(data, options: DecodeOptions(maxPixels: 1 << 22, layout: layout), pngReader: reader)
            return Outcome(text: "\(image.width)x\(image.height)x\(image.channels) \(info)", pixels: image.pixels)
        } catch {
            return Outcome(text: "error: \(error)")
        }
    }

    func expectSameAsLibpng(_ data: Data, _ what: String) {
        for layout in [DecodedLayout.rgb, .rgba, .grey] {
            let fast = outcome(data, .fastest, layout: layout)
            let reference = outcome(data, .libpng, layout: layout)
            #expect(fast == reference, "\(what), \(layout): \(fast.text) vs \(reference.text)")
        }
    }

    @Test func fixturesAndSamplesReadAsLibpngReadsThem() throws {
        // Resolved: under Sanitize/ the fixtures are a symlink into the checkout.
        let checkout = imageFixtures.resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let samples = checkout.appendingPathComponent("public/samples")
        let folders = [imageFixtures, samples]
        var files = 0
        var ownReader: [String] = []
        for folder in folders {
            for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".png") {
                let data = try Data(contentsOf: folder.appendingPathComponent(name))
                expectSameAsLibpng(data, name)
                if ownPNGReaderDecodes(data) { ownReader.append(name) }
                files += 1
            }
        }
        #expect(files >= 20)
        // The common files take the own reader; 16-bit, palette, interlaced, tRNS and damaged ones do not.
        #expect(Set(ownReader).isSuperset(of: ["chelsea.png", "coffee.png", "rgb8.png", "rgba8.png", "grey8.png", "greyalpha8.png"]))
        for name in ["grey16.png", "palette.png", "palette_trns.png", "rgb8_interlaced.png", "bad_crc.png", "bad_truncated.png"] {
            #expect(!ownReader.contains(name), "\(name)")
        }
    }

    /// Every filter type (the adaptive encoder picks all five on these), 1–4 channels,
    /// odd widths, one-row and one-column images.
    @Test(arguments: [1, 2, 3, 4])
    func everyFilterAndChannelCountRoundTrips(channels: Int) throws {
        var rng = XorShift(state: 0xC0FFEE ^ UInt64(channels))
        for (w, h) in [(1, 1), (1, 17), (23, 1), (31, 29), (64, 48)] {
            var pixels = [UInt8](repeating: 0, count: w * h * channels)
            for y in 0..<h {
                for x in 0..<w {
                    for c in 0..<channels {
                        // gradients, noise and flat patches, so each row's best filter differs
                        let noise = UInt8.random(in: 0...255, using: &rng)
                        pixels[(y * w + x) * channels + c] =
                            y % 4 == 0 ? noise : y % 4 == 1 ? UInt8((x * 9 + c * 40) & 255) : y % 4 == 2 ? UInt8((y * 5 + x) & 255) : 200
                    }
                }
            }
            // Grey + alpha has no public Image (layouts are 1, 3, 4) but is a PNG colour type.
            let image = Image(unchecked: w, h, channels, pixels)
            for fast in [false, true] {
                let png = try encodePNG(image, fast: fast)
                expectSameAsLibpng(png, "\(w)x\(h)x\(channels) fast \(fast)")
                #expect(ownPNGReaderDecodes(png))
                let layout: DecodedLayout = channels == 1 ? .grey : channels == 3 ? .rgb : .rgba
                if channels != 2 { #expect(try decodeImage(png, options: DecodeOptions(layout: layout)) == image) }
            }
        }
    }

    /// Damage inside the compressed pixels with every CRC made valid again, so the damage
    /// reaches the readers' inflate and filter code rather than the CRC check; and chunk
    /// lists libpng must judge (IDAT split by another chunk, an unknown critical chunk).
    @Test func damagedPixelDataReadsAsLibpngReadsIt() throws {
        let original = [UInt8](try fixtureData("rgb8.png"))
        var rng = XorShift(state: 0x5EED)
        for round in 0..<200 {
            var chunks = pngChunks(original)
            guard let i = chunks.firstIndex(where: { $0.type == "IDAT" }) else {
                Issue.record("no IDAT")
                return
            }
            var payload = chunks[i].data
            switch round % 4 {
            case 0, 1:
                for _ in 0..<Int.random(in: 1...4, using: &rng) where !payload.isEmpty {
                    payload[Int.random(in: 0..<payload.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2: payload = Array(payload.prefix(Int.random(in: 0..<payload.count, using: &rng)))
            default:
                let cut = Int.random(in: 1..<payload.count, using: &rng)
                chunks.insert(("tEXt", Array("k\0v".utf8)), at: i + 1)
                chunks.insert(("IDAT", Array(payload[cut...])), at: i + 2)
                payload = Array(payload[..<cut])
                if round % 8 == 7 { chunks[i + 1] = ("cRIT", [1, 2, 3]) }
            }
            chunks[i].data = payload
            expectSameAsLibpng(Data(pngFile(chunks)), "round \(round)")
        }
    }

    func pngChunks(_ bytes: [UInt8]) -> [(type: String, data: [UInt8])] {
        var chunks: [(String, [UInt8])] = []
        var at = 8
        while at + 12 <= bytes.count {
            let length = Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
            chunks.append((String(decoding: bytes[(at + 4)..<(at + 8)], as: UTF8.self), Array(bytes[(at + 8)..<(at + 8 + length)])))
            at += 12 + length
        }
        return chunks
    }

    func pngFile(_ chunks: [(type: String, data: [UInt8])]) -> [UInt8] {
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        for (type, data) in chunks {
            let n = UInt32(data.count)
            out += [UInt8(n >> 24), UInt8(n >> 16 & 255), UInt8(n >> 8 & 255), UInt8(n & 255)]
            let body = Array(type.utf8) + data
            let crc = crc32(body)
            out += body + [UInt8(crc >> 24), UInt8(crc >> 16 & 255), UInt8(crc >> 8 & 255), UInt8(crc & 255)]
        }
        return out
    }

    /// CRC-32 (ISO-HDLC, PNG's), bit by bit: the test's own, independent of the codecs'.
    func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }
}
