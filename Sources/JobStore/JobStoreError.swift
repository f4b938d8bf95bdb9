import Foundation
import PostgresNIO

/// What a store call can fail with. Callers mostly care about one question:
/// is PostgreSQL unreachable right now (retry later), or did the call itself fail?
public enum JobStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No usable connection within the operation timeout, or the connection broke
    /// mid-call. Nothing is known to have changed; retrying later is safe for every call.
    case unavailable(String)
    /// The job is not running under this owner any more (lease reaped, cancelled,
    /// finished, failed or never existed). A worker must stop working on it.
    case leaseLost(UUID)
    /// PostgreSQL rejected a statement (SQLSTATE and message), or returned data
    /// this library cannot read: a bug or a schema mismatch, not an outage.
    case database(String)
    /// The database's schema is newer than this build knows (a rolling upgrade
    /// must not let old processes write to a schema they do not understand).
    case schemaTooNew(found: Int, known: Int)

    public var description: String {
        switch self {
        case .unavailable(let why): "PostgreSQL unavailable: \(why)"
        case .leaseLost(let id): "job \(id) is not running under this owner"
        case .database(let why): "PostgreSQL error: \(why)"
        case .schemaTooNew(let found, let known): "database schema version \(found) is newer than this build's \(known)"
        }
    }

    /// Sorts postgres-nio's errors into outage versus genuine failure. Everything
    /// that is not a server-side error or a decoding error is treated as an outage:
    /// refused/closed connections, pool timeouts, the pool's circuit breaker.
    init(mapping error: any Error) {
        switch error {
        case let error as JobStoreError:
            self = error
        case let error as PSQLError where error.code == .server:
            let state = error.serverInfo?[.sqlState] ?? "?"
            let message = error.serverInfo?[.message] ?? "\(error)"
            self = .database("\(state) \(message)")
        case let error as PostgresDecodingError:
            self = .database("cannot decode column \(error.columnName): \(error.code)")
        case let error as PSQLError:
            self = .unavailable("\(error.code)")
        case is CancellationError:
            self = .unavailable("cancelled")
        default:
            self = .unavailable(String(describing: error))
        }
    }
}
