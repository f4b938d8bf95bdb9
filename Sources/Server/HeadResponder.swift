import HTTPTypes
import Hummingbird

/// HEAD on a GET route (RFC 9110 §9.3.2): the route answers as for GET, and the client
/// gets the status and headers (Content-Length among them, when the body's is known)
/// without the body. The router matches a route by its registered method before any
/// middleware runs, so this wraps the router's responder: the request log and metrics
/// see the GET it became. Paths that are no route (static files) keep their HEAD, which
/// the static-file middleware answers itself.
struct HeadResponder<Base: HTTPResponder>: HTTPResponder {
    typealias Context = Base.Context
    let base: Base
    let routes: RouteTable

    @Sendable func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .head else { return try await base.respond(to: request, context: context) }
        let methods = routes.methods(for: request.uri.path)
        guard methods.contains("GET"), !methods.contains("HEAD") else { return try await base.respond(to: request, context: context) }
        var head = request.head
        head.method = .get
        var response = try await base.respond(to: Request(head: head, body: request.body), context: context)
        let length = response.headers[.contentLength] ?? response.body.contentLength.map(String.init)
        // Setting the body sets Content-Length to its own (0): the GET's is put back after.
        response.body = ResponseBody()
        response.headers[.contentLength] = length
        return response
    }
}
