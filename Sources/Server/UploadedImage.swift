import Foundation
import HTTPTypes
import Hummingbird
import Imaging

/// The image of a POST: the raw body (`image/png`, `image/jpeg`, or
/// `application/octet-stream`, sniffed) or the `image` field of a `multipart/form-data` form.
/// Size limits come first: a declared Content-Length over the limit is refused before
/// reading, and reading stops at the limit.
enum UploadedImage {
    static let accepted = "image/png, image/jpeg, application/octet-stream, or multipart/form-data with a field 'image'"

    static func read(_ request: Request, maxBytes: Int) async throws -> Data {
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let isMultipart = mediaType == "multipart/form-data"
        guard isMultipart || ["image/png", "image/jpeg", "image/jpg", "application/octet-stream"].contains(mediaType) else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type",
                           mediaType.isEmpty ? "no Content-Type; send \(accepted)" : "Content-Type \(mediaType) is not accepted; send \(accepted)")
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
        }
        let body = Data(buffer.readableBytesView)
        let image: Data
        if isMultipart {
            guard let boundary = parameter("boundary", of: contentType) else {
                throw APIError.badRequest("multipart/form-data without a boundary parameter")
            }
            guard let part = try multipartField("image", in: body, boundary: boundary) else {
                throw APIError.badRequest("the form has no field 'image' (curl -F image=@photo.jpg ...)")
            }
            image = part
        } else {
            image = body
        }
        guard !image.isEmpty else { throw APIError.badRequest("the image is empty") }
        guard ImageFormat.detect(image) != nil else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type",
                           "the upload is not a PNG or JPEG image (its first bytes say neither)")
        }
        return image
    }

    static func tooLarge(_ maxBytes: Int) -> APIError {
        APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(maxBytes) bytes (server.max_body_bytes)")
    }

    /// A parameter of a header value such as `multipart/form-data; boundary=xyz`.
    static func parameter(_ name: String, of header: String) -> String? {
        for piece in header.split(separator: ";").dropFirst() {
            let kv = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == name {
                return kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    /// The content of the form field `name` (RFC 7578): parts are separated by
    /// `--boundary`, each with headers, a blank line, and the content up to CRLF--boundary.
    static func multipartField(_ name: String, in body: Data, boundary: String) throws -> Data? {
        let delimiter = Data("--\(boundary)".utf8)
        let crlf = Data("\r\n".utf8)
        let headerEnd = Data("\r\n\r\n".utf8)
        guard var cursor = body.range(of: delimiter)?.upperBound else {
            throw APIError.badRequest("malformed multipart body: boundary not found")
        }
        let next = Data("\r\n--\(boundary)".utf8)
        while cursor < body.endIndex {
            // "--" after a delimiter ends the body.
            if body[cursor...].starts(with: Data("--".utf8)) { return nil }
            guard body[cursor...].starts(with: crlf) else { throw APIError.badRequest("malformed multipart body") }
            let partStart = cursor + 2
            guard let headersRange = body.range(of: headerEnd, in: partStart..<body.endIndex) else {
                throw APIError.badRequest("malformed multipart body: part headers do not end")
            }
            let headers = String(decoding: body[partStart..<headersRange.lowerBound], as: UTF8.self)
            guard let end = body.range(of: next, in: headersRange.upperBound..<body.endIndex) else {
                throw APIError.badRequest("malformed multipart body: a part does not end with its boundary")
            }
            let disposition = headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-disposition:") }
            if let disposition, parameter("name", of: String(disposition)) == name {
                return body.subdata(in: headersRange.upperBound..<end.lowerBound)
            }
            cursor = end.upperBound
        }
        return nil
    }
}
