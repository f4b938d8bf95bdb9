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
