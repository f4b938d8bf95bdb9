import Foundation

/// What `listen()` yields. A notification is a hint, not the truth: it may be
/// lost (during an outage) or stale by the time it arrives, so a consumer
/// re-reads `status(id)` before acting on it.
public enum JobEvent: Sendable, Equatable {
    /// LISTEN is established. Yielded first, and again after every reconnect;
    /// a repeat means notifications were missed: re-read what you are waiting for.
    case listening
    /// A job changed state or progressed.
    case changed(JobChange)
}

/// The NOTIFY payload: enough to decide whether a re-read is worth it.
public struct JobChange: Sendable, Equatable, Codable {
    public var id: UUID
    public var state: JobState
    public var step: Int
    public var steps: Int
    public var cancelRequested: Bool

    enum CodingKeys: String, CodingKey {
        case id, state, step, steps
        case cancelRequested = "cancel_requested"
    }
}
