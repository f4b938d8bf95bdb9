import Foundation
import Testing

@testable import Imaging

@Suite struct PreprocessTests {
    @Test(arguments: manifest.preprocess.map(\.mode))
    func matchesKeras(_ modeName: String) throws {
        let c = try #require(manifest.preprocess.first { $0.mode == modeName })
        let mode: Preprocessing
        switch modeName {
        case "caffe": mode = .caffe
        case "tf": mode = .tf
        case "torch": mode = .torch
        case "scale": mode = .scale
        case "affine": mode = .affine(scale: try #require(c.scale), offset: try #require(c.offset))
        default:
            Issue.record("unknown mode \(modeName)")
            return
        }
        let src = try decodeImage(fixtureData("resize_src.png"))
        let out = try src.preprocessed(mode)
        #expect([out.height, out.width, out.channels] == c.shape)
        let expected = try fixtureF32(c.expected)
        let d = maxAbsDiff(out.values, expected)
        #expect(d == 0, "\(modeName): max |Δ| \(d) vs Keras")
    }

    @Test func caffeIsBGRMinusMean() throws {
        let img = try Image(width: 1, height: 1, channels: 3, pixels: [10, 20, 30])
        let v = try img.preprocessed(.caffe).values
        #expect(v == [30 - 103.939, 20 - 116.779, 10 - 123.68] as [Float])
        #expect(try img.preprocessed(.none).values == [10, 20, 30])
        #expect(throws: ImagingError.self) { try Image(width: 1, height: 1, channels: 1, fill: [3]).preprocessed(.caffe) }
    }
}
