import Foundation
import Server

/// A multipart/form-data body through the upload route's parser. The first line of the
/// input is the Content-Type header (its boundary parameter is used, as the route does),
/// the rest is the body. The answer is a field, nil, or an `APIError`: never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    let newline = data.firstIndex(of: 0x0A) ?? data.endIndex
    let header = String(decoding: data[data.startIndex..<newline], as: UTF8.self)
    let body = newline < data.endIndex ? Data(data[(newline + 1)...]) : Data()
    let boundary = ServerFuzzing.headerParameter("boundary", of: header) ?? "fuzz"
    if let field = try? ServerFuzzing.multipartField("image", in: body, boundary: boundary, maxParts: 16) {
        precondition(field.count <= body.count)
    }
    return 0
}
