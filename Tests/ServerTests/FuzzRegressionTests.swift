import Foundation
import TestSupport
import Testing
import Visualization

@testable import Server

/// Replays Tests/Fixtures/fuzz/multipart/ and Tests/Fixtures/fuzz/range/ (see scripts/fuzz)
/// as the `multipart` and `range` fuzz targets do. Multipart: the first line is the
/// Content-Type, the rest the body; the answer is a field, nil or an `APIError`. Range: two
/// bytes of file size, then a Range header (a range inside the file, or ignored, or 416),
/// and the same text as a query string, whose typed parsing gives requests or
/// `RequestError`s. A crash fails the run.
@Suite struct ServerFuzzRegressionTests {
    static func inputs(_ target: String) -> [String] { FuzzInputs.names(target) }

    @Test func thereAreInputs() {
        #expect(Self.inputs("multipart").count >= 3)
        #expect(Self.inputs("range").count >= 3)
    }

    @Test(arguments: inputs("multipart"))
    func multipart(_ name: String) throws {
        let data = try Data(contentsOf: FuzzInputs.directory("multipart").appendingPathComponent(name))
        let newline = data.firstIndex(of: 0x0A) ?? data.endIndex
        let header = String(decoding: data[data.startIndex..<newline], as: UTF8.self)
        let body = newline < data.endIndex ? Data(data[(newline + 1)...]) : Data()
        let boundary = ServerFuzzing.headerParameter("boundary", of: header) ?? "fuzz"
        do {
            if let field = try ServerFuzzing.multipartField("image", in: body, boundary: boundary, maxParts: 16) {
                #expect(field.count <= body.count)
            }
        } catch {
            #expect(error is APIError, "\(name): \(error)")
        }
    }

    @Test(arguments: inputs("range"))
    func range(_ name: String) throws {
        let bytes = [UInt8](try Data(contentsOf: FuzzInputs.directory("range").appendingPathComponent(name)))
        let size = bytes.count >= 2 ? Int(bytes[0]) | Int(bytes[1]) << 8 : 0
        let text = String(decoding: bytes.dropFirst(2), as: UTF8.self)
        if case .range(let r) = ServerFuzzing.byteRange(text, size: size) {
            #expect(r.lowerBound >= 0 && r.upperBound <= size && !r.isEmpty, "\(name): \(r) of \(size)")
        }
        var parameters: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(kv[0])
            if parameters[key] == nil { parameters[key] = kv.count > 1 ? String(kv[1]) : "" }
        }
        for error in ServerFuzzing.parseQuery(parameters) {
            #expect(error is RequestError, "\(name): \(error)")
        }
    }
}
