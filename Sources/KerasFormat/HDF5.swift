import CHDF5
import Engine
import Foundation

/// A failed HDF5 call, with HDF5's own error-stack text.
struct HDF5Error: Error, CustomStringConvertible {
    let call: String
    let detail: String
    var description: String { detail.isEmpty ? "HDF5 \(call) failed" : "HDF5 \(call) failed: \(detail)" }

    /// Captures (and clears) the calling thread's HDF5 error stack.
    static func capture(_ call: String) -> HDF5Error {
        var buffer = [CChar](repeating: 0, count: 2048)
        let n = buffer.withUnsafeMutableBufferPointer { convlens_h5_error_message($0.baseAddress, $0.count) }
        let text = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        return HDF5Error(call: call, detail: text)
    }
}

/// Process-wide HDF5 bookkeeping (for tests: every identifier must be closed).
enum HDF5Diagnostics {
    /// Open HDF5 objects of every kind in every file.
    static var openObjectCount: Int { Int(convlens_h5_open_object_count()) }
}

/// One HDF5 identifier, closed exactly once when the owner goes away.
final class H5ID {
    let id: hid_t
    private let close: (hid_t) -> herr_t

    /// Takes ownership of `id`; throws (with HDF5's message) when the call that made it failed.
    init(_ id: hid_t, call: String, close: @escaping (hid_t) -> herr_t) throws {
        guard id >= 0 else { throw HDF5Error.capture(call) }
        self.id = id
        self.close = close
    }

    deinit { _ = close(id) }
}

/// Runs an HDF5 call returning herr_t/htri_t; throws on a negative result.
@discardableResult
func h5check<T: BinaryInteger>(_ result: T, _ call: String) throws -> T {
    if result < 0 { throw HDF5Error.capture(call) }
    return result
}

/// A read-only HDF5 file. Objects opened from
/// it keep a reference to it, so the file closes after the last of them.
final class HDF5File {
    let handle: H5ID

    /// Opens `url` read-only.
    init(url: URL) throws {
        convlens_h5_silence_errors()
        handle = try H5ID(
            H5Fopen(url.path, convlens_H5F_ACC_RDONLY(), convlens_H5P_DEFAULT()),
            call: "H5Fopen", close: H5Fclose)
    }

    var root: HDF5Group {
        get throws { try HDF5Group(file: self, parent: handle.id, path: "/") }
    }
}

/// Something that carries attributes (a group or the file's root).
protocol HDF5Object {
    var handle: H5ID { get }
    var path: String { get }
}

/// A value read from an attribute.
enum HDF5AttributeValue: Equatable {
    case strings([String], scalar: Bool)
    case numbers([Double], scalar: Bool)
}

extension HDF5Object {
    func hasAttribute(_ name: String) throws -> Bool {
        try h5check(H5Aexists(handle.id, name), "H5Aexists(\(path) @\(name))") > 0
    }

    /// Reads an attribute: strings (fixed- or variable-length) or numbers (any
    /// integer or float type, converted to Double), scalar or 1-D.
    func attribute(_ name: String) throws -> HDF5AttributeValue {
        let attr = try H5ID(
            H5Aopen(handle.id, name, convlens_H5P_DEFAULT()),
            call: "H5Aopen(\(path) @\(name))", close: H5Aclose)
        let type = try H5ID(H5Aget_type(attr.id), call: "H5Aget_type", close: H5Tclose)
        let space = try H5ID(H5Aget_space(attr.id), call: "H5Aget_space", close: H5Sclose)
        let rank = try h5check(H5Sget_simple_extent_ndims(space.id), "H5Sget_simple_extent_ndims")
        let count = Int(try h5check(H5Sget_simple_extent_npoints(space.id), "H5Sget_simple_extent_npoints"))
        let scalar = rank == 0
        let typeClass = H5Tget_class(type.id)
        switch typeClass {
        case H5T_STRING:
            return .strings(try readStrings(attr: attr, fileType: type, space: space, count: count), scalar: scalar)
        case H5T_INTEGER, H5T_FLOAT:
            var values = [Double](repeating: 0, count: count)
            if count > 0 {
                try values.withUnsafeMutableBytes { buf in
                    _ = try h5check(H5Aread(attr.id, convlens_H5T_NATIVE_DOUBLE(), buf.baseAddress), "H5Aread(\(path) @\(name))")
                }
            }
            return .numbers(values, scalar: scalar)
        default:
            throw KerasFormatError.invalidFile(
                "HDF5 attribute '\(name)' of '\(path)' has an unsupported type (class \(typeClass.rawValue))")
        }
    }

    private func readStrings(attr: H5ID, fileType: H5ID, space: H5ID, count: Int) throws -> [String] {
        if count == 0 { return [] }
        let isVariable = try h5check(H5Tis_variable_str(fileType.id), "H5Tis_variable_str") > 0
        let memType = try H5ID(H5Tcopy(convlens_H5T_C_S1()), call: "H5Tcopy", close: H5Tclose)
        try h5check(H5Tset_cset(memType.id, H5Tget_cset(fileType.id)), "H5Tset_cset")
        if isVariable {
            try h5check(H5Tset_size(memType.id, convlens_H5T_VARIABLE()), "H5Tset_size")
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            return try pointers.withUnsafeMutableBufferPointer { buf -> [String] in
                try h5check(H5Aread(attr.id, memType.id, buf.baseAddress), "H5Aread(\(path))")
                defer { _ = H5Dvlen_reclaim(memType.id, space.id, convlens_H5P_DEFAULT(), buf.baseAddress) }
                return buf.map { $0.map { String(cString: $0) } ?? "" }
            }
        } else {
            // One byte more than the stored size, so a string that fills its
            // slot keeps its last character and still gets a terminator.
            let stored = H5Tget_size(fileType.id)
            guard stored > 0 else { throw HDF5Error.capture("H5Tget_size") }
            let slot = stored + 1
            try h5check(H5Tset_size(memType.id, slot), "H5Tset_size")
            try h5check(H5Tset_strpad(memType.id, H5T_STR_NULLTERM), "H5Tset_strpad")
            var bytes = [UInt8](repeating: 0, count: slot * count)
            try bytes.withUnsafeMutableBytes { buf in
                _ = try h5check(H5Aread(attr.id, memType.id, buf.baseAddress), "H5Aread(\(path))")
            }
            return (0..<count).map { i in
                let s = bytes[(i * slot)..<((i + 1) * slot)]
                let end = s.firstIndex(of: 0) ?? s.endIndex
                var str = String(decoding: s[s.startIndex..<end], as: UTF8.self)
                if H5Tget_strpad(fileType.id) == H5T_STR_SPACEPAD {
                    while str.hasSuffix(" ") { str.removeLast() }
                }
                return str
            }
        }
    }

    /// A string attribute (scalar, or a 1-element array).
    func stringAttribute(_ name: String) throws -> String {
        switch try attribute(name) {
        case .strings(let s, _) where s.count == 1: return s[0]
        default: throw KerasFormatError.invalidFile("HDF5 attribute '\(name)' of '\(path)' is not a single string")
        }
    }

    /// A string-array attribute; an empty numeric array (how h5py stores an
    /// empty list) reads as [].
    func stringArrayAttribute(_ name: String) throws -> [String] {
        switch try attribute(name) {
        case .strings(let s, _): return s
        case .numbers(let n, _) where n.isEmpty: return []
        default: throw KerasFormatError.invalidFile("HDF5 attribute '\(name)' of '\(path)' is not a list of strings")
        }
    }
}

/// An open HDF5 group.
final class HDF5Group: HDF5Object {
    let file: HDF5File
    let handle: H5ID
    let path: String

    fileprivate init(file: HDF5File, parent: hid_t, path: String, relative: String? = nil) throws {
        self.file = file
        self.path = path
        handle = try H5ID(
            H5Gopen2(parent, relative ?? path, convlens_H5P_DEFAULT()),
            call: "H5Gopen2(\(path))", close: H5Gclose)
    }

    private func childPath(_ name: String) -> String {
        path == "/" ? "/" + name : path + "/" + name
    }

    /// Whether a link `name` (possibly a path `a/b/c`) exists below this group.
    func exists(_ name: String) throws -> Bool {
        var prefix = ""
        for component in name.split(separator: "/", omittingEmptySubsequences: true) {
            prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
            if try h5check(H5Lexists(handle.id, prefix, convlens_H5P_DEFAULT()), "H5Lexists(\(childPath(prefix)))") <= 0 {
                return false
            }
        }
        return !prefix.isEmpty
    }

    func group(_ name: String) throws -> HDF5Group {
        guard try exists(name) else {
            throw KerasFormatError.invalidFile("HDF5 group '\(childPath(name))' is missing")
        }
        return try HDF5Group(file: file, parent: handle.id, path: childPath(name), relative: name)
    }

    /// Names of the links directly in this group, in name order.
    func memberNames() throws -> [String] {
        var info = H5G_info_t()
        try h5check(H5Gget_info(handle.id, &info), "H5Gget_info(\(path))")
        var names: [String] = []
        for i in 0..<info.nlinks {
            let len = try h5check(
                H5Lget_name_by_idx(
                    handle.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0,
                    convlens_H5P_DEFAULT()), "H5Lget_name_by_idx(\(path))")
            var buf = [CChar](repeating: 0, count: Int(len) + 1)
            try h5check(
                H5Lget_name_by_idx(
                    handle.id, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buf, buf.count,
                    convlens_H5P_DEFAULT()), "H5Lget_name_by_idx(\(path))")
            names.append(String(decoding: buf.prefix(Int(len)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return names
    }

    /// Reads a floating-point dataset (any float or integer storage type, any
    /// rank) as Float32.
    func dataset(_ name: String) throws -> Tensor {
        let where_ = childPath(name)
        guard try exists(name) else { throw KerasFormatError.invalidFile("HDF5 dataset '\(where_)' is missing") }
        let ds = try H5ID(H5Dopen2(handle.id, name, convlens_H5P_DEFAULT()), call: "H5Dopen2(\(where_))", close: H5Dclose)
        let type = try H5ID(H5Dget_type(ds.id), call: "H5Dget_type(\(where_))", close: H5Tclose)
        let typeClass = H5Tget_class(type.id)
        guard typeClass == H5T_FLOAT || typeClass == H5T_INTEGER else {
            throw KerasFormatError.invalidFile("HDF5 dataset '\(where_)' is not numeric (type class \(typeClass.rawValue))")
        }
        let space = try H5ID(H5Dget_space(ds.id), call: "H5Dget_space(\(where_))", close: H5Sclose)
        let rank = Int(try h5check(H5Sget_simple_extent_ndims(space.id), "H5Sget_simple_extent_ndims(\(where_))"))
        var dims = [hsize_t](repeating: 0, count: rank)
        if rank > 0 {
            try h5check(H5Sget_simple_extent_dims(space.id, &dims, nil), "H5Sget_simple_extent_dims(\(where_))")
        }
        let shape = dims.map { Int($0) }
        let count = shape.reduce(1, *)
        guard count <= 1 << 31 else {
            throw KerasFormatError.invalidFile("HDF5 dataset '\(where_)' is too large (\(shape))")
        }
        var scalars = [Float](repeating: 0, count: count)
        if count > 0 {
            try scalars.withUnsafeMutableBytes { buf in
                _ = try h5check(
                    H5Dread(
                        ds.id, convlens_H5T_NATIVE_FLOAT(), convlens_H5S_ALL(), convlens_H5S_ALL(),
                        convlens_H5P_DEFAULT(), buf.baseAddress), "H5Dread(\(where_))")
            }
        }
        return Tensor(shape: shape, scalars: scalars)
    }
}
