import Engine
import Foundation
import Testing
import ZIPFoundation

@testable import KerasFormat

extension SerialTests {
    @Suite struct RobustnessTests {
        /// Cut a good file anywhere: a clear error, never a crash.
        @Test(arguments: ["seq_conv_basic.k2.h5", "seq_conv_basic.k3.h5", "seq_conv_basic.keras", "residual.keras"])
        func truncatedAnywhereFailsCleanly(_ name: String) throws {
            let data = try Data(contentsOf: fixtureDirectory.appendingPathComponent(name))
            let n = data.count
            let url = FileManager.default.temporaryDirectory
                .appendingPathComponent("convlens-test-\(UUID().uuidString)-\(name)")
            defer { try? FileManager.default.removeItem(at: url) }
            for length in Set([1, 4, 7, 8, 64, 512, 2048, n / 3, n / 2, n - 100, n - 22, n - 1]) where length > 0 && length < n {
                try data.prefix(length).write(to: url)
                do {
                    _ = try KerasModel.load(contentsOf: url)
                    Issue.record("\(name) cut to \(length) of \(n) bytes loaded")
                } catch let error as KerasFormatError {
                    let text = error.description
                    #expect(text.contains("truncated"), "\(name) cut at \(length): \(text)")
                }
            }
            #expect(HDF5Diagnostics.openObjectCount == 0)
        }

        /// ZIPFoundation 0.9.20 does not compare CRCs itself; a damaged weights
        /// file must be caught before libhdf5 (not hardened against damaged
        /// files) parses it.
        @Test func aDamagedKerasZipFailsItsCRCCheck() throws {
            var data = try Data(contentsOf: fixtureDirectory.appendingPathComponent("residual.keras"))
            // model.weights.h5 is the last and largest entry: 60 % into the file is inside it.
            let at = data.count * 6 / 10
            data[at] ^= 0x5A
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-test-\(UUID().uuidString).keras")
            defer { try? FileManager.default.removeItem(at: url) }
            try data.write(to: url)
            #expect {
                _ = try KerasModel.load(contentsOf: url)
            } throws: { error in
                "\(error)".contains("model.weights.h5 fails its CRC-32 check")
            }
        }

        @Test func aZipWithoutAKerasModelIsRefused() throws {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-test-\(UUID().uuidString).keras")
            defer { try? FileManager.default.removeItem(at: url) }
            let archive = try Archive(url: url, accessMode: .create)
            try archive.addEntry(
                with: "readme.txt", type: .file, uncompressedSize: Int64(5),
                provider: { _, _ in Data("hello".utf8) })
            #expect {
                _ = try KerasModel.load(contentsOf: url)
            } throws: { error in
                "\(error)".contains("has no config.json")
            }
        }

        @Test func anHDF5FileThatIsNotAModelIsRefused() throws {
            // A Keras 3 weights-only file: the model.weights.h5 inside a .keras zip.
            let archive = try Archive(url: fixtureDirectory.appendingPathComponent("residual.keras"), accessMode: .read)
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-test-\(UUID().uuidString).weights.h5")
            defer { try? FileManager.default.removeItem(at: url) }
            _ = try archive.extract(try #require(archive["model.weights.h5"]), to: url)
            #expect {
                _ = try KerasModel.load(contentsOf: url)
            } throws: { error in
                "\(error)".contains("weights only")
            }
            #expect(HDF5Diagnostics.openObjectCount == 0)
        }

        /// Loads from several threads at once give the same networks.
        @Test func concurrentLoads() throws {
            let files = ["residual.k2.h5", "residual.k3.h5", "residual.keras", "mobilenetv2_block.keras"]
            let input = try Tensor.readNPY(contentsOf: fixtureDirectory.appendingPathComponent("residual.input.npy"))
            let reference = try KerasModel.load(contentsOf: fixtureDirectory.appendingPathComponent("residual.keras"))
                .network.predict(input)
            let results = Results()
            DispatchQueue.concurrentPerform(iterations: 12) { i in
                let file = files[i % files.count]
                do {
                    let model = try KerasModel.load(contentsOf: fixtureDirectory.appendingPathComponent(file))
                    results.add(file, file.hasPrefix("residual") ? try model.network.predict(input) : nil)
                } catch {
                    results.fail("\(file): \(error)")
                }
            }
            #expect(results.failures.isEmpty, "\(results.failures)")
            for (file, output) in results.outputs {
                #expect(output == reference, "\(file)")
            }
            #expect(results.outputs.count == 9)
            #expect(HDF5Diagnostics.openObjectCount == 0)
        }
    }
}

private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var outputs: [(String, Tensor)] = []
    private(set) var failures: [String] = []
    func add(_ file: String, _ t: Tensor?) { lock.withLock { if let t { outputs.append((file, t)) } } }
    func fail(_ s: String) { lock.withLock { failures.append(s) } }
}
