import Visualization

/// What draws the pictures the service answers and its jobs run: the loaded model
/// (`ModelSession`), or, in a test of the HTTP logic, a stand-in that answers without
/// computing. Requests are checked and canonicalised against the model either way.
public protocol Renderer: Sendable {
    /// Renders a canonical request whose cost is checked: the caller did both, once
    /// (`RenderRequest.render(on:input:limits:progress:)`).
    func render(
        canonical request: some RenderRequest, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered
}

extension ModelSession: Renderer {
    public func render(
        canonical request: some RenderRequest, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        try request.render(on: self, input: input, limits: limits, progress: progress)
    }
}
