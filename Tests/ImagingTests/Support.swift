import Foundation
import Testing

@testable import Imaging

let imageFixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/images")

func fixtureData(_ name: String) throws -> Data {
    try Data(contentsOf: imageFixtures.appendingPathComponent(name))
}

func fixtureU8(_ name: String) throws -> [UInt8] { [UInt8](try fixtureData(name)) }

func fixtureF32(_ name: String) throws -> [Float] {
    let d = try fixtureData(name)
    return d.withUnsafeBytes { raw in
        (0..<(d.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }
}

/// manifest.json written by tools/fixtures/make_image_fixtures.py
struct Manifest: Decodable {
    struct DecodeCase: Decodable {
        let input: String
        let expected: String
        let shape: [Int]
        let tolerance: Int
        let note: String
    }
    struct BadCase: Decodable {
        let input: String
        let error: String
        let note: String
    }
    struct LimitCase: Decodable {
        let input: String
        let width: Int
        let height: Int
    }
    struct ExifCase: Decodable {
        let input: String
        let orientation: Int
        let expected: String
        let shape: [Int]
        let stored: String?
        let stored_shape: [Int]?
    }
    struct ResizeCase: Decodable {
        let input: String
        let filter: String
        let width: Int
        let height: Int
        let box: [Int]?
        let expected: String
        let shape: [Int]
    }
    struct PreprocessCase: Decodable {
        let mode: String
        let expected: String
        let shape: [Int]
        let scale: Float?
        let offset: Float?
    }
    struct UpsampleCase: Decodable {
        let input: String
        let in_shape: [Int]
        let width: Int
        let height: Int
        let expected: String
    }
    let decode: [DecodeCase]
    let bad: [BadCase]
    let limit: [LimitCase]
    let exif: [ExifCase]
    let resize: [ResizeCase]
    let preprocess: [PreprocessCase]
    let upsample: [UpsampleCase]
    let colormaps: [String: [String: [Int]]]
    let keras_load_img: [DecodeCase2]
    struct DecodeCase2: Decodable {
        let input: String
        let expected: String
        let shape: [Int]
    }
}

let manifest: Manifest = {
    do {
        return try JSONDecoder().decode(Manifest.self, from: fixtureData("manifest.json"))
    } catch {
        fatalError("cannot read Tests/Fixtures/images/manifest.json: \(error)")
    }
}()

func maxAbsDiff(_ a: [UInt8], _ b: [UInt8]) -> Int {
    precondition(a.count == b.count)
    var m = 0
    for i in 0..<a.count { m = max(m, abs(Int(a[i]) - Int(b[i]))) }
    return m
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a[i] - b[i])) }
    return m
}
