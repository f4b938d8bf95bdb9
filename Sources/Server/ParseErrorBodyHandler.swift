import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Gives a JSON body to the 400 Hummingbird writes when a request cannot be parsed at all
/// (an unknown method, an over-long URL or header, bytes HTTP/1.1 does not allow in a
/// request line or header): it writes that answer itself, empty, with `Connection: close`
/// and `Content-Length: 0`, below the routes and their JSON errors. Every other answer has
/// a body, so that empty 400 is recognised by its head alone.
final class ParseErrorBodyHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let body: ByteBuffer = {
        let detail =
            "the request could not be parsed as HTTP/1.1 (a malformed request line or header, an unknown method, or a URL or header too long); the connection is closed"
        let json = (try? JSONEncoder.api.encode(APIError.ErrorBody(error: "bad_request", detail: detail))) ?? Data()
        return ByteBuffer(bytes: json + [0x0A])
    }()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head(var head) = unwrapOutboundIn(data), head.status == .badRequest,
            head.headerFields[.contentLength] == "0", head.headerFields[.connection] == "close"
        else {
            context.write(data, promise: promise)
            return
        }
        head.headerFields[.contentType] = "application/json; charset=utf-8"
        head.headerFields[.contentLength] = String(Self.body.readableBytes)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(Self.body)), promise: promise)
    }
}
