import Foundation
import JobStore

/// `postgres://user[:password]@host[:port]/database` (or `postgresql://`), as
/// `database.url`, `CONVLENS_DATABASE_URL` and `--database-url` give it.
public struct DatabaseURL: Sendable, CustomStringConvertible {
    public var configuration: JobStoreConfiguration

    public init(_ text: String) throws {
        guard let url = URLComponents(string: text), ["postgres", "postgresql"].contains(url.scheme ?? "") else {
            throw Problem("'\(text)' is not a postgres://user@host:port/database URL")
        }
        guard let user = url.user, !user.isEmpty else { throw Problem("'\(text)' names no user (postgres://USER@host/database)") }
        let host = url.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw Problem("'\(text)' names no database (postgres://user@host/DATABASE)")
        }
        let port = url.port ?? 5432
        guard (1...65535).contains(port) else { throw Problem("port \(port) is not in 1...65535") }
        configuration = JobStoreConfiguration(host: host, port: port, username: user, password: url.password, database: database)
    }

    /// The URL without its password, for logs.
    public var description: String {
        "postgres://\(configuration.username)@\(configuration.host):\(configuration.port)/\(configuration.database)"
    }

    struct Problem: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }
}
