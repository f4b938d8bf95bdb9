import CHDF5
import Engine
import Foundation
import Testing
import ZIPFoundation

@testable import KerasFormat

/// Writes a small HDF5 file with the C API (no Python in CI): fixed-length
/// strings (one exactly filling its slot, as Keras 2 wrote layer and weight
/// names), variable-length strings, numbers, an empty array, datasets.
private func writeTestFile(_ url: URL) throws {
    convlens_h5_silence_errors()
    let file = H5Fcreate(url.path, convlens_H5F_ACC_TRUNC(), convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT())
    try #require(file >= 0)
    defer { H5Fclose(file) }

    func fixedStrings(_ loc: hid_t, _ name: String, _ values: [String], scalar: Bool = false, size: Int? = nil) {
        let slot = size ?? values.map(\.utf8.count).max()!
        let type = H5Tcopy(convlens_H5T_C_S1())
        H5Tset_size(type, slot)
        H5Tset_strpad(type, H5T_STR_NULLPAD)
        var dims = [hsize_t(values.count)]
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
        var bytes = [UInt8](repeating: 0, count: slot * values.count)
        for (i, v) in values.enumerated() { for (j, b) in v.utf8.enumerated() { bytes[i * slot + j] = b } }
        let attr = H5Acreate2(loc, name, type, space, convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT())
        H5Awrite(attr, type, bytes)
        H5Aclose(attr)
        H5Sclose(space)
        H5Tclose(type)
    }
    func variableStrings(_ loc: hid_t, _ name: String, _ values: [String], scalar: Bool = false) {
        let type = H5Tcopy(convlens_H5T_C_S1())
        H5Tset_size(type, convlens_H5T_VARIABLE())
        H5Tset_cset(type, H5T_CSET_UTF8)
        var dims = [hsize_t(values.count)]
        let space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
        let attr = H5Acreate2(loc, name, type, space, convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT())
        let cStrings = values.map { strdup($0) }
        var pointers = cStrings.map { UnsafePointer($0) }
        H5Awrite(attr, type, &pointers)
        cStrings.forEach { free($0) }
        H5Aclose(attr)
        H5Sclose(space)
        H5Tclose(type)
    }
    func doubles(_ loc: hid_t, _ name: String, _ values: [Double]) {
        var dims = [hsize_t(values.count)]
        let space = H5Screate_simple(1, &dims, nil)
        let attr = H5Acreate2(loc, name, convlens_H5T_NATIVE_DOUBLE(), space, convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT())
        H5Awrite(attr, convlens_H5T_NATIVE_DOUBLE(), values)
        H5Aclose(attr)
        H5Sclose(space)
    }

    fixedStrings(file, "fixed_scalar", ["block1_conv1/kernel:0"], scalar: true)
    fixedStrings(file, "fixed_array", ["block1_conv1", "fc1", "predictions"])
    fixedStrings(file, "fixed_padded", ["ab", "cde"], size: 8)
    variableStrings(file, "vlen_scalar", ["{\"class_name\": \"Sequential\", \"é\": 1}"], scalar: true)
    variableStrings(file, "vlen_array", ["conv/kernel", "conv/bias"])
    doubles(file, "numbers", [1.5, -2, 3])
    doubles(file, "empty", [])

    let group = H5Gcreate2(file, "outer", convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT())
    let inner = H5Gcreate2(group, "inner", convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT())
    var dims: [hsize_t] = [2, 3, 2]
    let space = H5Screate_simple(3, &dims, nil)
    let ds = H5Dcreate2(
        inner, "kernel:0", convlens_H5T_NATIVE_DOUBLE(), space, convlens_H5P_DEFAULT(),
        convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT())
    let values = (0..<12).map { Double($0) * 0.5 - 1 }
    H5Dwrite(ds, convlens_H5T_NATIVE_DOUBLE(), convlens_H5S_ALL(), convlens_H5S_ALL(), convlens_H5P_DEFAULT(), values)
    H5Dclose(ds)
    H5Sclose(space)
    let scalarSpace = H5Screate(H5S_SCALAR)
    let sds = H5Dcreate2(
        group, "scalar", convlens_H5T_NATIVE_FLOAT(), scalarSpace, convlens_H5P_DEFAULT(),
        convlens_H5P_DEFAULT(), convlens_H5P_DEFAULT())
    var x: Float = 7.25
    H5Dwrite(sds, convlens_H5T_NATIVE_FLOAT(), convlens_H5S_ALL(), convlens_H5S_ALL(), convlens_H5P_DEFAULT(), &x)
    H5Dclose(sds)
    H5Sclose(scalarSpace)
    H5Gclose(inner)
    H5Gclose(group)
}

private func temporaryURL(_ suffix: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("convlens-test-\(UUID().uuidString)\(suffix)")
}

extension SerialTests {
    @Suite struct HDF5ReaderTests {
        @Test func readsFixedAndVariableLengthStringsNumbersAndDatasets() throws {
            let url = temporaryURL(".h5")
            defer { try? FileManager.default.removeItem(at: url) }
            try writeTestFile(url)
            let baseline = HDF5Diagnostics.openObjectCount
            do {
                let file = try HDF5File(url: url)
                let root = try file.root
                #expect(HDF5Diagnostics.openObjectCount > baseline)
                // Fixed length: the string that fills its slot keeps its last character.
                #expect(try root.stringAttribute("fixed_scalar") == "block1_conv1/kernel:0")
                #expect(try root.stringArrayAttribute("fixed_array") == ["block1_conv1", "fc1", "predictions"])
                #expect(try root.stringArrayAttribute("fixed_padded") == ["ab", "cde"])
                #expect(try root.stringAttribute("vlen_scalar") == "{\"class_name\": \"Sequential\", \"é\": 1}")
                #expect(try root.stringArrayAttribute("vlen_array") == ["conv/kernel", "conv/bias"])
                #expect(try root.attribute("numbers") == .numbers([1.5, -2, 3], scalar: false))
                #expect(try root.stringArrayAttribute("empty") == [])
                #expect(try root.hasAttribute("numbers"))
                #expect(try !root.hasAttribute("missing"))

                #expect(try root.exists("outer/inner/kernel:0"))
                #expect(try !root.exists("outer/nothing/kernel:0"))
                let outer = try root.group("outer")
                #expect(try outer.memberNames() == ["inner", "scalar"])
                let kernel = try outer.dataset("inner/kernel:0")
                #expect(kernel.shape == [2, 3, 2])
                #expect(kernel.scalars == (0..<12).map { Float($0) * 0.5 - 1 })
                let scalar = try outer.dataset("scalar")
                #expect(scalar.shape == [])
                #expect(scalar.scalars == [7.25])

                // Missing things are errors, not crashes.
                #expect(throws: (any Error).self) { try root.attribute("missing") }
                #expect(throws: (any Error).self) { try root.group("nope") }
                #expect(throws: (any Error).self) { try outer.dataset("inner/bias:0") }
                #expect(throws: (any Error).self) { try root.stringAttribute("numbers") }
                #expect(throws: (any Error).self) { try outer.dataset("inner") }
            }
            // Every identifier was closed with its owner.
            #expect(HDF5Diagnostics.openObjectCount == baseline)
        }

        /// HDF5 allows a user block before the superblock; such a file is still HDF5.
        @Test func anHDF5FileWithAUserBlockIsRecognised() throws {
            let url = temporaryURL(".h5")
            defer { try? FileManager.default.removeItem(at: url) }
            convlens_h5_silence_errors()
            let fcpl = H5Pcreate(convlens_H5P_FILE_CREATE())
            H5Pset_userblock(fcpl, 512)
            let file = H5Fcreate(url.path, convlens_H5F_ACC_TRUNC(), fcpl, convlens_H5P_DEFAULT())
            try #require(file >= 0)
            H5Fclose(file)
            H5Pclose(fcpl)
            #expect {
                _ = try KerasModel.load(contentsOf: url)
            } throws: { error in
                "\(error)".contains("without a Keras model_config")
            }
            #expect(HDF5Diagnostics.openObjectCount == 0)
        }

        @Test func openingANonHDF5FileThrowsWithHDF5sMessage() throws {
            let url = temporaryURL(".h5")
            defer { try? FileManager.default.removeItem(at: url) }
            try Data("hello".utf8).write(to: url)
            #expect {
                _ = try HDF5File(url: url)
            } throws: { error in
                "\(error)".contains("H5Fopen")
            }
            #expect(HDF5Diagnostics.openObjectCount == 0)
        }

        @Test func loadingEveryFixtureLeavesNoHDF5ObjectOrTemporaryFileBehind() throws {
            let temp = FileManager.default.temporaryDirectory
            func weightTemps() throws -> Set<String> {
                Set(
                    try FileManager.default.contentsOfDirectory(atPath: temp.path)
                        .filter { $0.hasPrefix("convlens-") && $0.hasSuffix("model.weights.h5") })
            }
            let tempsBefore = try weightTemps()
            #expect(HDF5Diagnostics.openObjectCount == 0)
            for fixture in Fixtures.all {
                do {
                    let model = try KerasModel.load(contentsOf: fixture.modelURL)
                    #expect(fixture.kind == "ok")
                    #expect(!model.layers.isEmpty)
                } catch {
                    #expect(fixture.kind == "bad", "\(fixture.name): \(error)")
                }
                #expect(HDF5Diagnostics.openObjectCount == 0, "\(fixture.name) left HDF5 objects open")
            }
            #expect(try weightTemps() == tempsBefore)
        }
    }
}

extension SerialTests {
    @Suite struct ZipWeightOrderTests {
        /// Keras ≥ 3.x names each `vars` group's layer; older Keras 3 files don't,
        /// and the path is derived from the class names in layer order. On every
        /// committed `.keras` fixture both ways must give the same variables.
        @Test(arguments: Fixtures.ok.filter { $0.format == KerasFileFormat.kerasZip.rawValue })
        func derivedPathsAgreeWithTheNameAttributes(_ fixture: FixtureCase) throws {
            let temp = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-test-\(UUID().uuidString).h5")
            defer { try? FileManager.default.removeItem(at: temp) }
            let archive = try Archive(url: fixture.modelURL, accessMode: .read)
            _ = try archive.extract(try #require(archive["model.weights.h5"]), to: temp)
            var config = Data()
            _ = try archive.extract(try #require(archive["config.json"])) { config.append($0) }
            let spec = try ModelSpec.parse(try JSON.parse(config, what: "config.json"))

            let file = try HDF5File(url: temp)
            let named = try ZipWeightStore(root: try file.root, spec: spec)
            let derived = try ZipWeightStore(root: try file.root, spec: spec, useNameAttributes: false)
            var compared = 0
            for l in spec.layers {
                guard case .ordered(let a) = try named.variables(forLayer: l.name, className: l.className, path: []),
                    case .ordered(let b) = try derived.variables(forLayer: l.name, className: l.className, path: [])
                else {
                    Issue.record("not ordered")
                    continue
                }
                #expect(a == b, "\(fixture.name): layer \(l.name)")
                compared += a.count
            }
            #expect(compared > 0)
        }
    }
}
