import Foundation
import Visualization

/// What a comparison job carries: the canonical request and the uploaded image's digest.
/// The image itself goes to the result store under `imageKey` before the job is queued,
/// so a worker in another process (or on another machine) reads it from PostgreSQL; the
/// job row stays small and identical uploads are stored once.
struct CompareJob: Codable, Sendable {
    static let kind = "compare"

    var request: CompareRequest
    /// SHA-256 (hex) of the uploaded bytes: part of the job's content address.
    var image: String

    /// Where the uploaded image is stored (not a content address of a result: the prefix
    /// keeps the two apart).
    var imageKey: String { Self.imageKey(image) }
    static func imageKey(_ digest: String) -> String { "upload:\(digest)" }
}
