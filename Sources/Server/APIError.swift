import Foundation
import HTTPTypes
import Hummingbird
import Imaging
import KerasFormat
import NIOCore
import NIOHTTP1
import Visualization

/// An error answered as JSON `{"error": "...", "detail": "..."}` with its HTTP status.
/// `error` is a short stable code a client can switch on; `detail` says what to do.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var detail: String
    public var extraHeaders: HTTPFields

    public init(_ status: HTTPResponse.Status, _ code: String, _ detail: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.detail = detail
        self.extraHeaders = headers
    }

    public var description: String { "\(status.code) \(code): \(detail)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = extraHeaders
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        let body = try JSONEncoder.api.encode(ErrorBody(error: code, detail: detail))
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body + [0x0A])))
    }

    struct ErrorBody: Encodable {
        var error: String
        var detail: String
    }

    /// What a client is told of an internal error; the log has the error itself.
    static let internalErrorDetail = "the server failed on this request; its log has the details (look for this response's X-Request-Id)"

    static func badRequest(_ detail: String) -> APIError { APIError(.badRequest, "bad_request", detail) }
    static func notFound(_ detail: String) -> APIError { APIError(.notFound, "not_found", detail) }

    /// nginx's 499: the client went away, so no status reaches it. Counted apart from 500s
    /// (the server did nothing wrong) and logged below error level.
    static let clientClosedRequest = HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request")
    static func clientClosed(_ detail: String) -> APIError { APIError(clientClosedRequest, "client_closed_request", detail) }
}

extension APIError {
    /// The HTTP meaning of an error thrown below the server.
    public static func from(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case let e as ImagingError:
            switch e {
            case .tooManyPixels: return APIError(.contentTooLarge, "image_too_large", e.description)
            case .notAnImage: return APIError(.unsupportedMediaType, "unsupported_media_type", e.description)
            case .unsupported: return APIError(.unsupportedMediaType, "unsupported_image", e.description)
            case .corrupt: return APIError(.badRequest, "corrupt_image", e.description)
            case .outOfMemory: return APIError(.contentTooLarge, "image_too_large", e.description)
            case .invalidArgument: return APIError(.badRequest, "bad_request", e.description)
            }
        case let e as RequestError:
            switch e {
            case .badParameter: return APIError(.badRequest, "bad_request", e.description)
            case .unknownLayer: return APIError(.notFound, "unknown_layer", e.description)
            case .outOfRange: return APIError(.notFound, "out_of_range", e.description)
            case .classOutOfRange: return APIError(.badRequest, "class_out_of_range", e.description)
            case .notSpatial:
                return APIError(
                    .unprocessableContent, "not_spatial",
                    e.description + "; choose a convolutional layer (GET /api/model lists which are spatial)")
            case .unsupported: return APIError(.unprocessableContent, "unsupported", e.description)
            case .tooCostly: return APIError(.unprocessableContent, "too_costly", e.description)
            case .sizeDependentLayer: return APIError(.unprocessableContent, "size_dependent_layer", e.description)
            }
        case VisualizationError.cancelled:
            return APIError(.serviceUnavailable, "cancelled", "the computation was cancelled (the server is shutting down?)")
        case let e as JobQueue.Full:
            return APIError(.tooManyRequests, "queue_full", e.description, headers: [.retryAfter: "10"])
        case let e as JobsUnavailable:
            return APIError(.serviceUnavailable, "jobs_unavailable", e.description, headers: [.retryAfter: "5"])
        case let e as JobQueue.ShuttingDown:
            return APIError(.serviceUnavailable, "shutting_down", e.description)
        case let e as ComputeExecutor.Stopped:
            return APIError(.serviceUnavailable, "shutting_down", e.description)
        case let e as ComputeExecutor.Overloaded:
            return APIError(.tooManyRequests, "overloaded", e.description, headers: [.retryAfter: "\(e.retryAfterSeconds)"])
        case let e as ComputeExecutor.ClientOverloaded:
            return APIError(.tooManyRequests, "client_overloaded", e.description, headers: [.retryAfter: "2"])
        case let e as ComputeExecutor.Cancelled where e.reason == ComputeExecutor.Cancelled.clientGone:
            return clientClosed(e.description)
        case let e as ComputeExecutor.Cancelled:
            return APIError(.serviceUnavailable, "cancelled", e.description)
        case is NIOTooManyBytesError:
            // A chunked body past the limit (a Content-Length over it is refused before reading).
            return APIError(
                .contentTooLarge, "body_too_large", "the request body is larger than the server accepts (server.max_body_bytes)")
        case let e as HTTPParserError:
            // The HTTP decoder's errors surface while a route reads the body: the client sent
            // a broken message, or went away before sending all of it.
            if e == .invalidEOFState { return clientClosed("the client closed the connection before the request body ended") }
            return APIError.badRequest("malformed HTTP request body (\(e))")
        case is BodyTimeout:
            return APIError(.requestTimeout, "body_timeout", "\(error)")
        case let e as ChannelError where [.eof, .ioOnClosedChannel, .alreadyClosed, .inputClosed, .outputClosed].contains(e):
            return clientClosed("the connection closed while the request was read (\(e))")
        case let e as IOError where [ECONNRESET, EPIPE, ETIMEDOUT].contains(e.errnoCode):
            return clientClosed("the connection failed while the request was read (\(e))")
        case let e as HTTPError:
            let code: String
            switch e.status {
            case .notFound: code = "not_found"
            case .contentTooLarge: code = "body_too_large"
            case .methodNotAllowed: code = "method_not_allowed"
            default: code = e.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
            }
            var headers = e.headers
            headers[.contentType] = nil
            return APIError(e.status, code, e.body ?? e.status.reasonPhrase, headers: headers)
        default:
            // The error's text can name server files and hosts: it goes to the log only.
            return APIError(.internalServerError, "internal_error", internalErrorDetail)
        }
    }
}

/// Turns every error a route throws (ours, the router's 404, the body limit's 413) into
/// the JSON error body, so a client never sees an HTML or empty error.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let api = APIError.from(error)
            if api.status == .internalServerError {
                context.logger.error("internal error: \(error)")
            } else if api.status == APIError.clientClosedRequest {
                context.logger.debug("client went away: \(error)")
            }
            return try api.response(from: request, context: context)
        }
    }
}

extension JSONEncoder {
    static var api: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
