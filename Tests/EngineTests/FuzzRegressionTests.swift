import Engine
import Foundation
import TestSupport
import Testing

/// Replays Tests/Fixtures/fuzz/npy/ (see scripts/fuzz) through `Tensor.decodeNPY` as the
/// `npy` fuzz target does: a tensor that round-trips, or an `NPYError`. A crash fails the run.
@Suite struct NPYFuzzRegressionTests {
    static let dir = FuzzInputs.directory("npy")
    static var inputs: [String] { FuzzInputs.names("npy") }

    @Test func thereAreInputs() { #expect(Self.inputs.count >= 3) }

    @Test(arguments: inputs)
    func replay(_ name: String) throws {
        let data = try Data(contentsOf: Self.dir.appendingPathComponent(name))
        do {
            let tensor = try Tensor.decodeNPY(data)
            #expect(try Tensor.decodeNPY(tensor.npyData()).shape == tensor.shape)
        } catch {
            #expect(error is NPYError, "\(name): \(error)")
        }
    }
}
