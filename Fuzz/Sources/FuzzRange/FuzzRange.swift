import Foundation
import Server

/// Header text through the static files' Range parser and the query parser. The input's
/// first 2 bytes pick a file size (0...65535); the rest is the Range header. The same text,
/// split as a query string (`a=b&c=d`, no percent-decoding), goes through the typed query
/// parsing of every route.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = start.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? []
    let size = bytes.count >= 2 ? Int(bytes[0]) | Int(bytes[1]) << 8 : 0
    let text = String(decoding: bytes.dropFirst(2), as: UTF8.self)
    switch ServerFuzzing.byteRange(text, size: size) {
    case .ignore, .unsatisfiable: break
    case .range(let r):
        precondition(r.lowerBound >= 0 && r.upperBound <= size && !r.isEmpty, "range \(r) outside a file of \(size) bytes")
    }
    var parameters: [String: String] = [:]
    for pair in text.split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let key = String(kv[0])
        if parameters[key] == nil { parameters[key] = kv.count > 1 ? String(kv[1]) : "" }
    }
    _ = ServerFuzzing.parseQuery(parameters)
    return 0
}
