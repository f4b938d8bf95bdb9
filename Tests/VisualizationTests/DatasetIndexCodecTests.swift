import Foundation
import Imaging
import Testing

@testable import Visualization

/// The stored form of the dataset index: what goes in comes out, and damaged bytes are
/// refused instead of read as something else.
@Suite struct DatasetIndexCodecTests {
    static let index = DatasetIndex(
        k: 2, images: ["a/x.png", "b/y.jpg", "b/z.jpg"], sizes: [[640, 427], [300, 451], [1, 1]],
        layers: [
            "conv": [
                [
                    UnitExample(image: "b/y.jpg", value: 3.25, row: 7, column: 0, box: [10, -2, 40, 27]),
                    UnitExample(image: "a/x.png", value: -0.5, row: 111, column: 65535, box: [0, 0, 223, 223]),
                ],
                [],
                [UnitExample(image: "b/z.jpg", value: .greatestFiniteMagnitude, row: 0, column: 1, box: [1, 2, 3, 4])],
            ],
            "act": [[UnitExample(image: "a/x.png", value: 1e-7, row: 1, column: 2, box: [5, 6, 7, 8])]],
        ])

    @Test func roundTripsExactly() throws {
        let data = try Self.index.serialized()
        #expect(try DatasetIndex(serialized: data) == Self.index)
        // Equal indexes give equal bytes (layers in name order): the same content, the same file.
        #expect(try DatasetIndex(serialized: data).serialized() == data)
        // 4 examples of 20 bytes, 3 + 1 channel counts, after the 16-byte preamble and the header.
        let headerLength = data[12..<16].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(data.count == 16 + headerLength + 4 + 4 * 20)
    }

    @Test func refusesDamagedBytes() throws {
        let data = try Self.index.serialized()
        #expect(throws: VisualizationError.self) { try DatasetIndex(serialized: data.dropLast()) }
        #expect(throws: VisualizationError.self) { try DatasetIndex(serialized: data + [0]) }
        var version = data
        version[8] = 2
        #expect(throws: VisualizationError.self) { try DatasetIndex(serialized: version) }
        var magic = data
        magic[0] = UInt8(ascii: "X")
        #expect(throws: VisualizationError.self) { try DatasetIndex(serialized: magic) }
        // A count above k in the first channel (the byte right after the header).
        let headerLength = data[12..<16].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var count = data
        count[16 + headerLength] = 3
        #expect(throws: VisualizationError.self) { try DatasetIndex(serialized: count) }
        #expect(throws: VisualizationError.self) { try DatasetIndex(serialized: Data()) }
    }

    @Test func valuesThatDoNotFitAreRefusedNotWrapped() throws {
        var index = Self.index
        index.layers["conv"]![0][0].box = [0, 0, 40_000, 3]
        #expect(throws: VisualizationError.self) { try index.serialized() }
        index = Self.index
        index.layers["conv"]![0][0].row = 70_000
        #expect(throws: VisualizationError.self) { try index.serialized() }
    }

    /// Model-input boxes mapped to the image's pixels: a plain resize scales each axis; a
    /// centre crop shifts into the crop first. The whole input is the whole image (or crop).
    @Test func imageBoxesCoverTheModelBox() {
        var p = InputPipeline(width: 224, height: 224, filter: .bilinear, preprocessing: .none)
        #expect(p.imageBox([0, 0, 223, 223], imageWidth: 451, imageHeight: 300) == [0, 0, 299, 450])
        // Pixel 112 of 224 covers [225.5, 227.5) of 451 columns: whole pixels 225...227.
        #expect(p.imageBox([0, 112, 0, 112], imageWidth: 451, imageHeight: 224) == [0, 225, 0, 227])
        #expect(p.imageBox([10, 20, 10, 20], imageWidth: 224, imageHeight: 224) == [10, 20, 10, 20])
        p.centreCrop = true
        // 451×300 cropped to the centred 300×300 (x 75..<375), then 224: the full input is the crop.
        #expect(p.imageBox([0, 0, 223, 223], imageWidth: 451, imageHeight: 300) == [0, 75, 299, 374])
    }
}
