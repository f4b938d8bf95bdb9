import Foundation

/// The stored form of a `DatasetIndex`: compact, because it holds k examples for every
/// channel of every indexed layer (tens of thousands of channels for a full network),
/// where JSON would spend ~100 bytes on each example.
///
/// Layout (little-endian), version 1:
///   "CLDSIDX\0" (8 bytes), UInt32 version, UInt32 header length n,
///   n bytes of JSON header {"k", "images": [{"name", "width", "height"}], "layers": [{"name", "channels"}]},
///   then for each header layer, for each channel: UInt8 count (≤ k), then count records of
///   20 bytes: UInt32 image (index into images), Float32 value, UInt16 row, UInt16 column,
///   Int16 top, left, bottom, right (the receptive field in model-input pixels, inclusive).
/// Layers are written in name order, so equal indexes give equal bytes.
extension DatasetIndex {
    static let magic = Data("CLDSIDX\0".utf8)
    public static let formatVersion: UInt32 = 1

    struct Header: Codable {
        struct ImageEntry: Codable {
            var name: String
            var width, height: Int
        }
        struct LayerEntry: Codable {
            var name: String
            var channels: Int
        }
        var k: Int
        var images: [ImageEntry]
        var layers: [LayerEntry]
    }

    /// The index in the binary form above. Throws when a value does not fit its field
    /// (more than 2^32 images, a feature map or box beyond 65535 or 32767 pixels, k > 255).
    public func serialized() throws -> Data {
        guard k >= 1, k <= 255, images.count == sizes.count, images.count <= Int(UInt32.max) else {
            throw VisualizationError.invalid("the dataset index cannot be stored (k \(k), \(images.count) images, \(sizes.count) sizes)")
        }
        let names = layers.keys.sorted()
        let header = Header(
            k: k, images: zip(images, sizes).map { Header.ImageEntry(name: $0, width: $1.first ?? 0, height: $1.last ?? 0) },
            layers: names.map { Header.LayerEntry(name: $0, channels: layers[$0]?.count ?? 0) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(header)
        let imageNumber = Dictionary(images.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var out = Self.magic
        out.appendLE(Self.formatVersion)
        out.appendLE(UInt32(json.count))
        out.append(json)
        for name in names {
            for examples in layers[name] ?? [] {
                guard examples.count <= k else { throw VisualizationError.invalid("a channel of \(name) has more than k examples") }
                out.append(UInt8(examples.count))
                for e in examples {
                    guard let image = imageNumber[e.image], e.box.count == 4,
                        let row = UInt16(exactly: e.row), let column = UInt16(exactly: e.column)
                    else { throw VisualizationError.invalid("an example of \(name) cannot be stored: \(e)") }
                    let box = try e.box.map { v -> Int16 in
                        guard let b = Int16(exactly: v) else { throw VisualizationError.invalid("box \(e.box) beyond 32767 pixels") }
                        return b
                    }
                    out.appendLE(UInt32(image))
                    out.appendLE(e.value.bitPattern)
                    out.appendLE(row)
                    out.appendLE(column)
                    for b in box { out.appendLE(UInt16(bitPattern: b)) }
                }
            }
        }
        return out
    }

    /// Reads the binary form; throws on a wrong magic, version or any length that does not add up.
    public init(serialized data: Data) throws {
        var reader = LittleEndianReader(data: data)
        guard try reader.bytes(8) == Self.magic else { throw VisualizationError.invalid("not a ConvLens dataset index") }
        let version: UInt32 = try reader.read()
        guard version == Self.formatVersion else {
            throw VisualizationError.invalid("dataset index version \(version); this ConvLens reads version \(Self.formatVersion)")
        }
        let headerLength: UInt32 = try reader.read()
        let header = try JSONDecoder().decode(Header.self, from: try reader.bytes(Int(headerLength)))
        guard (1...255).contains(header.k) else { throw VisualizationError.invalid("dataset index with k \(header.k)") }
        self.init(k: header.k, images: header.images.map(\.name), sizes: header.images.map { [$0.width, $0.height] })
        for layer in header.layers {
            guard layer.channels >= 0, layer.channels <= data.count else { throw VisualizationError.invalid("bad channel count") }
            var channels: [[UnitExample]] = []
            channels.reserveCapacity(layer.channels)
            for _ in 0..<layer.channels {
                let count: UInt8 = try reader.read()
                guard Int(count) <= header.k else { throw VisualizationError.invalid("a channel holds more than k examples") }
                var examples: [UnitExample] = []
                for _ in 0..<count {
                    let image: UInt32 = try reader.read()
                    guard Int(image) < images.count else { throw VisualizationError.invalid("example of unknown image \(image)") }
                    let value = Float(bitPattern: try reader.read())
                    let row: UInt16 = try reader.read()
                    let column: UInt16 = try reader.read()
                    var box: [Int] = []
                    for _ in 0..<4 { box.append(Int(Int16(bitPattern: try reader.read()))) }
                    examples.append(UnitExample(image: images[Int(image)], value: value, row: Int(row), column: Int(column), box: box))
                }
                channels.append(examples)
            }
            layers[layer.name] = channels
        }
        guard reader.atEnd else { throw VisualizationError.invalid("trailing bytes after the dataset index") }
    }
}

extension Data {
    fileprivate mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}

/// Reads little-endian integers from the front of a byte buffer, refusing to run past its end.
private struct LittleEndianReader {
    let data: Data
    var offset = 0

    init(data: Data) { self.data = Data(data) }

    var atEnd: Bool { offset == data.count }

    mutating func bytes(_ n: Int) throws -> Data {
        guard n >= 0, n <= data.count - offset else { throw VisualizationError.invalid("the dataset index is truncated") }
        defer { offset += n }
        return data.subdata(in: offset..<(offset + n))
    }

    mutating func read<T: FixedWidthInteger>() throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= data.count - offset else { throw VisualizationError.invalid("the dataset index is truncated") }
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { dst in
            data.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + size)])) }
        }
        offset += size
        return T(littleEndian: v)
    }
}
