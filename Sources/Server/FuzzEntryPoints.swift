import Foundation
import Visualization

/// The server's parsers of untrusted bytes, public only for the libFuzzer targets in
/// `Fuzz/` (which see this module as a library product, without `@testable`).
/// Each forwards to the function the routes use; nothing here is used by the server.
public enum ServerFuzzing {
    /// `UploadedImage.multipartField`: the form field `name` of a multipart body.
    public static func multipartField(_ name: String, in body: Data, boundary: String, maxParts: Int) throws -> Data? {
        try UploadedImage.multipartField(name, in: body, boundary: boundary, maxParts: maxParts)
    }

    /// `UploadedImage.parameter`: a parameter such as `boundary` of a header value.
    public static func headerParameter(_ name: String, of header: String) -> String? {
        UploadedImage.parameter(name, of: header)
    }

    /// `StaticFiles.byteRange` as (lower, upper) bytes; nil when the header is ignored,
    /// an empty range when it is unsatisfiable (416).
    public enum ByteRange: Equatable, Sendable { case ignore, unsatisfiable, range(Range<Int>) }

    public static func byteRange(_ header: String, size: Int) -> ByteRange {
        switch StaticFiles.byteRange(header, size: size) {
        case .ignore: return .ignore
        case .unsatisfiable: return .unsatisfiable
        case .range(let r): return .range(r)
        }
    }

    /// `Query`'s typed parsing of percent-decoded query parameters into each route's request.
    public static func parseQuery(_ parameters: [String: String]) -> [any Error] {
        let query = Query(parameters: parameters)
        var errors: [any Error] = []
        func attempt(_ body: () throws -> Void) { do { try body() } catch { errors.append(error) } }
        attempt { _ = try query.heatmapRequest() }
        attempt { _ = try query.activationsRequest() }
        attempt { _ = try query.predictRequest() }
        attempt { _ = try query.filterRequest(layer: parameters["layer"] ?? "conv", index: try query.int("index")) }
        return errors
    }
}

extension Query {
    /// A query from parameters already split and percent-decoded (fuzzing only).
    init(parameters: [String: String]) { self.parameters = parameters }
}
