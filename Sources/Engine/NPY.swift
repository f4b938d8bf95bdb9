import Foundation

/// NumPy `.npy` files (format versions 1–3), the exchange format for exact
/// numbers with Keras: inputs, activations, gradients.
///
/// Reads little-endian float32 and float64 (converted to Float32), C order.
/// Writes float32 version 1.0.
public enum NPYError: Error, CustomStringConvertible, Equatable {
    case notNPY(String)
    case unsupported(String)
    case truncated(expected: Int, got: Int)

    public var description: String {
        switch self {
        case .notNPY(let why): return "not a NumPy .npy file: \(why)"
        case .unsupported(let what): return "unsupported .npy content: \(what)"
        case .truncated(let expected, let got): return "truncated .npy data: expected \(expected) bytes of array data, got \(got)"
        }
    }
}

extension Tensor {
    public static func readNPY(contentsOf url: URL) throws -> Tensor {
        try decodeNPY(Data(contentsOf: url))
    }

    public static func decodeNPY(_ data: Data) throws -> Tensor {
        let bytes = [UInt8](data)
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw NPYError.notNPY("missing magic string") }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw NPYError.notNPY("short header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw NPYError.unsupported("format version \(major)")
        }
        guard bytes.count >= headerStart + headerLength else { throw NPYError.notNPY("header runs past the end") }
        guard let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8) else {
            throw NPYError.notNPY("header is not text")
        }
        let descr = try field("descr", in: header)
        let fortran = try field("fortran_order", in: header)
        let shapeText = try field("shape", in: header)
        guard fortran == "False" else { throw NPYError.unsupported("Fortran order") }
        let shape = try parseShape(shapeText)
        let body = headerStart + headerLength
        let available = bytes.count - body
        let dtype = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
        let elementSize: Int
        switch dtype {
        case "<f4", "|f4", "=f4": elementSize = 4
        case "<f8", "=f8": elementSize = 8
        default: throw NPYError.unsupported("dtype \(dtype) (float32 or float64 little-endian expected)")
        }
        // The header's shape is checked against the bytes that follow before anything is
        // allocated: a few bytes of header must not claim gigabytes (or overflow Int).
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw NPYError.unsupported("shape \(shape) has too many elements") }
            count = product
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: elementSize)
        guard !overflow else { throw NPYError.unsupported("shape \(shape) has too many elements") }
        guard available >= byteCount else { throw NPYError.truncated(expected: byteCount, got: available) }

        var scalars = [Float](repeating: 0, count: count)
        if elementSize == 4 {
            scalars.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[body..<(body + byteCount)]))
                }
            }
        } else {
            bytes.withUnsafeBytes { src in
                for i in 0..<count {
                    scalars[i] = Float(src.loadUnaligned(fromByteOffset: body + i * 8, as: Double.self))
                }
            }
        }
        return Tensor(shape: shape, scalars: scalars)
    }

    /// The tensor as a version 1.0 float32 `.npy` file.
    public func npyData() -> Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so that magic + lengths + header + newline is a multiple of 64.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let n = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8)])
        data.append(contentsOf: Array(header.utf8))
        scalars.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }

    public func writeNPY(to url: URL) throws {
        try npyData().write(to: url, options: .atomic)
    }
}

private func field(_ key: String, in header: String) throws -> String {
    guard let keyRange = header.range(of: "'\(key)':") else { throw NPYError.notNPY("header lacks '\(key)'") }
    var rest = header[keyRange.upperBound...].drop(while: { $0 == " " })
    if rest.first == "(" {
        guard let close = rest.firstIndex(of: ")") else { throw NPYError.notNPY("unterminated shape") }
        return String(rest[...close])
    }
    if rest.first == "'" || rest.first == "\"" {
        let quote = rest.removeFirst()
        guard let close = rest.firstIndex(of: quote) else { throw NPYError.notNPY("unterminated string") }
        return String(rest[..<close])
    }
    return String(rest.prefix(while: { $0 != "," && $0 != "}" })).trimmingCharacters(in: .whitespaces)
}

private func parseShape(_ text: String) throws -> [Int] {
    let inner = text.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
    if inner.isEmpty { return [] }
    return try inner.split(separator: ",").compactMap { part -> Int? in
        let t = part.trimmingCharacters(in: .whitespaces)
        if t.isEmpty { return nil }
        guard let v = Int(t), v >= 0 else { throw NPYError.notNPY("bad shape \(text)") }
        return v
    }
}
