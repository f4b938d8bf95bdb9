import Foundation
import HTTPTypes
import Hummingbird
import Imaging
import NIOCore

/// Limits on what an upload may make the server do, set per request by the server's
/// middleware from `ServerSettings` (a task-local, so every route reading an image gets
/// them without passing settings through each call).
struct UploadLimits: Sendable {
    var maxFormParts = ServerSettings().maxFormParts

    @TaskLocal static var current = UploadLimits()
}

/// The image of a POST: the raw body (`image/png`, `image/jpeg`, or
/// `application/octet-stream`, sniffed) or the `image` field of a `multipart/form-data` form.
/// Size limits come first: a declared Content-Length over the limit is refused before
/// reading, and reading stops at the limit.
enum UploadedImage {
    static let accepted = "image/png, image/jpeg, application/octet-stream, or multipart/form-data with a field 'image'"

    static func read(_ request: Request, maxBytes: Int) async throws -> Data {
        // Only the media type is case-insensitive: a boundary keeps its case
        // (browsers send `----WebKitFormBoundary7MA4YWxkTrZu0gW`).
        let contentType = request.headers[.contentType] ?? ""
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let isMultipart = mediaType == "multipart/form-data"
        guard isMultipart || ["image/png", "image/jpeg", "image/jpg", "application/octet-stream"].contains(mediaType) else {
            throw APIError(
                .unsupportedMediaType, "unsupported_media_type",
                mediaType.isEmpty ? "no Content-Type; send \(accepted)" : "Content-Type \(mediaType) is not accepted; send \(accepted)")
        }
        // A coded body (gzip, br…) would be read as an image that is not one: refuse what the
        // server does not decode, as RFC 9110 §15.5.16 says, before reading it.
        let codings = request.headers[values: .contentEncoding].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty && $0 != "identity" }
        if let coding = codings.first {
            throw APIError(
                .unsupportedMediaType, "unsupported_encoding",
                "Content-Encoding \(coding.prefix(40)) is not decoded here; send the image as it is (identity)")
        }
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > maxBytes {
            throw tooLarge(maxBytes)
        }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maxBytes)
        } catch let e as HTTPError where e.status == .contentTooLarge {
            throw tooLarge(maxBytes)
        } catch is NIOTooManyBytesError {
            // A chunked body has no Content-Length to check first: the limit trips while reading.
            throw tooLarge(maxBytes)
        }
        let body = Data(buffer.readableBytesView)
        let image: Data
        if isMultipart {
            guard let boundary = parameter("boundary", of: contentType) else {
                throw APIError.badRequest("multipart/form-data without a boundary parameter")
            }
            guard
                let part = try multipartField(
                    "image", in: body, boundary: boundary,
                    maxParts: UploadLimits.current.maxFormParts)
            else {
                throw APIError.badRequest("the form has no field 'image' (curl -F image=@photo.jpg ...)")
            }
            image = part
        } else {
            image = body
        }
        guard !image.isEmpty else { throw APIError.badRequest("the image is empty") }
        guard ImageFormat.detect(image) != nil else {
            throw APIError(
                .unsupportedMediaType, "unsupported_media_type",
                "the upload is not a PNG or JPEG image (its first bytes say neither)")
        }
        return image
    }

    static func tooLarge(_ maxBytes: Int) -> APIError {
        APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(maxBytes) bytes (server.max_body_bytes)")
    }

    /// A parameter of a header value such as `multipart/form-data; boundary=xyz`.
    /// The name is matched case-insensitively; the value keeps its case.
    static func parameter(_ name: String, of header: String) -> String? {
        for piece in header.split(separator: ";").dropFirst() {
            let kv = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == name {
                return kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    /// Longest part header block read; a browser's is a few hundred bytes.
    static let maxPartHeaderBytes = 16 << 10

    /// The content of the form field `name` (RFC 7578): parts are separated by
    /// `--boundary`, each with headers, a blank line, and the content up to CRLF--boundary.
    ///
    /// One forward pass: every search starts where the previous one ended, so the body is
    /// read about once (each search is memchr on the needle's first byte plus a compare of
    /// at most 74 bytes, as RFC 2046 caps a boundary at 70 characters). Parts are counted
    /// and more than `maxParts` is refused, so the work is bounded by `server.max_body_bytes`
    /// and `server.max_form_parts`. That bound is why this runs inline in the request's
    /// task rather than on a separate thread: Hummingbird runs handlers on Swift's
    /// cooperative pool (not on the NIO event loops), and a bounded linear scan of at most
    /// `max_body_bytes` is cheaper than the hop a separate thread would cost.
    static func multipartField(_ name: String, in body: Data, boundary: String, maxParts: Int) throws -> Data? {
        guard (1...70).contains(boundary.utf8.count) else {
            throw APIError.badRequest("malformed multipart body: the boundary must be 1 to 70 characters (RFC 2046)")
        }
        let delimiter = Array("--\(boundary)".utf8)
        let next = Array("\r\n--\(boundary)".utf8)
        let headerEnd = Array("\r\n\r\n".utf8)
        let nameBytes = Array(name.utf8)
        return try body.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) throws -> Data? in
            // The first delimiter opens the body (at the start, or after a preamble line).
            guard let first = find(delimiter, in: bytes, from: 0) else {
                throw APIError.badRequest("malformed multipart body: boundary not found")
            }
            var cursor = first + delimiter.count
            var parts = 0
            while cursor < bytes.count {
                // "--" after a delimiter ends the body.
                if starts(bytes, at: cursor, with: [0x2D, 0x2D]) { return nil }
                // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
                while cursor < bytes.count, bytes[cursor] == 0x20 || bytes[cursor] == 0x09 { cursor += 1 }
                guard starts(bytes, at: cursor, with: [0x0D, 0x0A]) else { throw APIError.badRequest("malformed multipart body") }
                parts += 1
                if parts > maxParts {
                    throw APIError(
                        .contentTooLarge, "too_many_parts",
                        "the form has more than \(maxParts) parts (server.max_form_parts)")
                }
                let partStart = cursor + 2
                // A part without headers starts with the blank line right away.
                let contentStart: Int
                if starts(bytes, at: partStart, with: [0x0D, 0x0A]) {
                    contentStart = partStart + 2
                } else {
                    let window = UnsafeRawBufferPointer(rebasing: bytes[partStart..<min(bytes.count, partStart + maxPartHeaderBytes)])
                    guard let end = find(headerEnd, in: window, from: 0) else {
                        throw APIError.badRequest("malformed multipart body: part headers do not end within \(maxPartHeaderBytes) bytes")
                    }
                    contentStart = partStart + end + headerEnd.count
                }
                guard let end = find(next, in: bytes, from: contentStart) else {
                    throw APIError.badRequest("malformed multipart body: a part does not end with its boundary")
                }
                // Headers become a String only when their bytes hold the field's name at all.
                if contentStart - 2 > partStart,
                    case let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[partStart..<(contentStart - 4)]),
                    find(nameBytes, in: headerBytes, from: 0) != nil
                {
                    let headers = String(decoding: headerBytes, as: UTF8.self)
                    let disposition = headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-disposition:") }
                    if let disposition, parameter("name", of: String(disposition)) == name {
                        return Data(UnsafeRawBufferPointer(rebasing: bytes[contentStart..<end]))
                    }
                }
                cursor = end + next.count
            }
            throw APIError.badRequest("malformed multipart body: it ends without the closing boundary")
        }
    }

    /// Whether `bytes[at...]` starts with `prefix`.
    static func starts(_ bytes: UnsafeRawBufferPointer, at: Int, with prefix: [UInt8]) -> Bool {
        guard at >= 0, bytes.count - at >= prefix.count else { return false }
        for (i, b) in prefix.enumerated() where bytes[at + i] != b { return false }
        return true
    }

    /// The first index ≥ `from` where `needle` occurs in `bytes`: memchr for its first byte,
    /// then a compare of the rest.
    static func find(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        let n = needle.count
        guard n > 0, from >= 0, let base = bytes.baseAddress, bytes.count >= n else { return nil }
        let last = bytes.count - n  // the last index where the needle can start
        var i = from
        while i <= last {
            guard let hit = memchr(base + i, Int32(needle[0]), last - i + 1) else { return nil }
            let j = base.distance(to: UnsafeRawPointer(hit))
            let same = needle.withUnsafeBytes { memcmp(base + j, $0.baseAddress!, n) == 0 }
            if same { return j }
            i = j + 1
        }
        return nil
    }
}
