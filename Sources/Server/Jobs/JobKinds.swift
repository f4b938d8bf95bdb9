import Foundation
import Visualization

/// The kinds of picture a stored job can hold, by job kind: how a job row's request is
/// read back, so a worker renders whatever kind it claims without knowing it. Adding a
/// kind of picture that runs as a job is one `register` here.
public struct JobKinds: Sendable {
    private var types: [String: any RenderRequest.Type] = [:]

    /// The kinds ConvLens queues: filter visualisations and comparisons of methods.
    public static let standard = JobKinds([FilterRequest.self, CompareRequest.self])

    public init(_ types: [any RenderRequest.Type]) {
        for type in types { register(type) }
    }

    /// Reads jobs of each of `type`'s `jobKinds` as `type`.
    public mutating func register(_ type: any RenderRequest.Type) {
        for kind in type.jobKinds { types[kind] = type }
    }

    /// The request a job row of `kind` stores (`StoredJob.json`). Throws `Unreadable` for
    /// a kind not registered here or a request this version cannot decode.
    func decode(kind: String, json: Data) throws -> StoredJob {
        guard let type = types[kind] else { throw Unreadable() }
        return try Self.decode(type, json: json)
    }

    private static func decode<R: RenderRequest>(_ type: R.Type, json: Data) throws -> StoredJob {
        let decoder = JSONDecoder()
        if let upload = try? decoder.decode(StoredJob.OnUpload<R>.self, from: json) {
            return StoredJob(request: upload.request, image: upload.image)
        }
        guard let request = try? decoder.decode(R.self, from: json) else { throw Unreadable() }
        return StoredJob(request: request, image: nil)
    }

    struct Unreadable: Error, CustomStringConvertible {
        var description: String { "the job's request cannot be read by this version of ConvLens" }
    }
}

/// What a job row carries: the canonical request and, for a request on an upload, the
/// image's digest. The image itself goes to the result store under `imageKey` before
/// the job is queued, so a worker in another process (or on another machine) reads it
/// from PostgreSQL; the row stays small and identical uploads are stored once.
struct StoredJob: Sendable {
    var request: any RenderRequest
    /// SHA-256 (hex) of the uploaded bytes: part of the job's content address.
    var image: String?

    /// A request on an upload as its row holds it.
    struct OnUpload<R: RenderRequest>: Codable {
        var request: R
        var image: String
    }

    /// The row's JSON: the request alone, or with the image's digest.
    var json: Data {
        guard let image else { return request.canonicalJSON }
        return Self.encode(request, image: image)
    }

    private static func encode<R: RenderRequest>(_ request: R, image: String) -> Data {
        // Strings and numbers only: encoding cannot fail.
        (try? JSONEncoder().encode(OnUpload(request: request, image: image))) ?? Data()
    }

    /// Where an uploaded image is stored (not a content address of a result: the prefix
    /// keeps the two apart).
    static func imageKey(_ digest: String) -> String { "upload:\(digest)" }
}
