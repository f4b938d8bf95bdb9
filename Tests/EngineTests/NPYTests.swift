import Foundation
import Testing

@testable import Engine

private let npyDir = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/npy")

@Test func readsFloat32WrittenByNumPy() throws {
    let t = try Tensor.readNPY(contentsOf: npyDir.appendingPathComponent("f32_2x3x4.npy"))
    #expect(t.shape == [2, 3, 4])
    #expect(t.scalars == (0..<24).map { Float($0) * 0.5 - 3 })
}

@Test func readsFloat64AsFloat32() throws {
    let t = try Tensor.readNPY(contentsOf: npyDir.appendingPathComponent("f64_5.npy"))
    #expect(t.shape == [5])
    #expect(t.scalars == [-1, -0.5, 0, 0.5, 1])
}

@Test func refusesIntegerArrays() throws {
    #expect(throws: NPYError.self) { try Tensor.readNPY(contentsOf: npyDir.appendingPathComponent("i32_3.npy")) }
}

@Test func roundTripsAndRefusesTruncation() throws {
    let t = Tensor(shape: [1, 2, 2, 3], scalars: (0..<12).map { Float($0) / 7 })
    let data = t.npyData()
    #expect(try Tensor.decodeNPY(data) == t)
    // Header block (magic + lengths + header) is 64-byte aligned, as NumPy writes it.
    #expect((data.count - 12 * 4) % 64 == 0)
    #expect(throws: NPYError.truncated(expected: 48, got: 20)) { try Tensor.decodeNPY(data.prefix(data.count - 28)) }
    #expect(throws: NPYError.self) { try Tensor.decodeNPY(Data("not numpy".utf8)) }
}
