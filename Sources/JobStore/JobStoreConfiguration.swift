import Foundation

/// Where the shared PostgreSQL is and how long a caller may wait for it.
public struct JobStoreConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// Upper bound for any single store call, including waiting for a pooled
    /// connection. During an outage the pool keeps retrying in the background;
    /// callers get `JobStoreError.unavailable` after this long instead of hanging.
    public var operationTimeout: Duration = .seconds(5)
    /// Upper bound for opening one TCP connection (the pool's and the listener's).
    public var connectTimeout: Duration = .seconds(2)
    /// Pool size per process. Claims are short statements, so a few suffice.
    public var maximumConnections: Int = 8
    /// The NOTIFY channel. Every ConvLens process in a cluster must agree on it.
    public var channel: String = "convlens_jobs"

    public init(host: String = "127.0.0.1", port: Int = 5432, username: String, password: String? = nil, database: String) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }
}
