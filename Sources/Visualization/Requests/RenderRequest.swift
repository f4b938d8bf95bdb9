import Foundation

/// One kind of picture a front end can ask for: a value holding every parameter with
/// its default. The HTTP routes and the command line only translate to and from these;
/// `ModelSession.render` turns one into bytes. Being `Codable`, a request is also what a
/// job row stores and what any process can run.
public protocol RenderRequest: Sendable, Codable, Hashable {
    /// The kind of result, part of every content address (`heatmap`, `filters`, …).
    static var kind: String { get }

    /// The request checked against its ranges and the model, with what the model decides
    /// filled in (the default layer, a class label as its index, the image size), so two
    /// requests for the same picture are equal. Throws `RequestError` naming the parameter.
    func canonical(for session: ModelSession) throws -> Self

    /// The kinds of job this type's requests run as (`jobPolicy`'s `kind`): how a stored
    /// job's request is found again (`JobKinds`). Empty: it never runs as a stored job.
    static var jobKinds: [String] { get }

    /// How a front end runs this canonical request: nil to draw it at once (the caller
    /// waits on a compute thread), else as a job. `background`: nobody waits on it now
    /// (a grid page, pre-rendering). `address` is the result's content address.
    func jobPolicy(address: ContentAddress, background: Bool) -> JobPolicy?

    /// Refuses a canonical request dearer than `limits` allow (`RequestError.tooCostly`),
    /// before anything is queued or read.
    func checkCost(on session: ModelSession, limits: RenderLimits) throws

    /// Model passes (forward or backward, at the model's input size) this canonical request
    /// makes: what a front end's per-client limit on work in flight counts.
    func passes(on session: ModelSession) throws -> Int

    /// Renders this canonical request from `input` (its cost checked: `checkCost(on:limits:)`) (nil for a request that takes none);
    /// `progress` after each step, returning false to cancel (`VisualizationError.cancelled`).
    func render(
        on session: ModelSession, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered
}

/// Progress of a request that reports it: the step just finished of how many, and the
/// mean objective (a filter's ascent; NaN for the others).
public typealias RenderProgress = FilterProgress

/// A request run as a job: what its status says, and where it goes in the queue.
public struct JobPolicy: Sendable, Equatable {
    /// The job kind in statuses and metrics (one of the type's `jobKinds`).
    public var kind: String
    public var priority: JobPriorityClass
    /// Steps its progress counts, known before it starts.
    public var steps: Int
    /// One line saying what the job computes.
    public var summary: String
    /// Where the finished result is served; nil: the front end that queues it says.
    public var resultPath: String?
    /// Whether it must run in the process that queued it (it reads that process's files),
    /// never as a row another process may claim.
    public var staysInProcess: Bool

    public init(
        kind: String, priority: JobPriorityClass, steps: Int, summary: String, resultPath: String?,
        staysInProcess: Bool = false
    ) {
        self.kind = kind
        self.priority = priority
        self.steps = steps
        self.summary = summary
        self.resultPath = resultPath
        self.staysInProcess = staysInProcess
    }
}

/// A job's place in the queue, first to last.
public enum JobPriorityClass: Int, Sendable, Comparable {
    /// One filter a person is waiting for.
    case interactive
    /// A grid of filters, or a comparison, a person is waiting for.
    case grid
    /// Work nobody is watching yet (pre-rendering).
    case bulk

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

extension RenderRequest {
    /// Drawn at once by default: only the kinds a job runs say otherwise.
    public static var jobKinds: [String] { [] }
    public func jobPolicy(address: ContentAddress, background: Bool) -> JobPolicy? { nil }
    /// No cost beyond what rendering checks itself.
    public func checkCost(on session: ModelSession, limits: RenderLimits) throws {}
    /// One pass, unless the type counts its own.
    public func passes(on session: ModelSession) throws -> Int { 1 }

    /// The input of a request that renders from an image or a model input.
    func required(_ input: RenderInput?) throws -> RenderInput {
        guard let input else { throw VisualizationError.invalid("a \(Self.kind) request renders from an image or a model input") }
        return input
    }
}

extension RenderRequest {
    /// The request as JSON with sorted keys: the text its identity is hashed from.
    public var canonicalJSON: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // A request holds only strings, numbers, booleans and enums: encoding cannot fail.
        return (try? encoder.encode(self)) ?? Data()
    }

    /// The content address of this request's result: used as cache key, ETag and job
    /// identity. Hash it from the canonical request only (`canonical(for:)` first).
    public func contentAddress(model: String, image: String? = nil) -> ContentAddress {
        ContentAddress(kind: Self.kind, model: model, request: canonicalJSON, image: image)
    }
}

extension ModelSession {
    /// Renders any request on this model: its canonical form, its cost checked against
    /// `limits`, then its `render(on:input:limits:progress:)`.
    public func render<R: RenderRequest>(
        _ request: R, input: RenderInput? = nil, limits: RenderLimits = RenderLimits(),
        progress: (RenderProgress) -> Bool = { _ in true }
    ) throws -> Rendered {
        let canonical = try request.canonical(for: self)
        try canonical.checkCost(on: self, limits: limits)
        return try canonical.render(on: self, input: input, limits: limits, progress: progress)
    }
}

/// SHA-256 over a result's kind, the model's digest, the canonical request and the
/// input image's digest. Equal addresses mean the same bytes.
public struct ContentAddress: Sendable, Hashable, Codable, CustomStringConvertible {
    public let hex: String

    /// Bumped when the same request would render different bytes (a changed default or
    /// drawing), so caches from before do not answer.
    static let version = "convlens-result-v2"

    public init(kind: String, model: String, request: Data, image: String?) {
        var d = SHA256Digest()
        d.update("\(Self.version)\n\(kind)\n\(model)\n")
        d.update(request)
        d.update("\n\(image ?? "-")")
        hex = d.finalizeHex()
    }

    public init(hex: String) { self.hex = hex }

    /// A strong HTTP entity tag for the result.
    public var etag: String { "\"\(hex.prefix(40))\"" }
    public var description: String { hex }
}
