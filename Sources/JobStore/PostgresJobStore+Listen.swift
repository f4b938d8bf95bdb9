import Foundation
import Logging
import NIOCore
import PostgresNIO

extension PostgresJobStore {
    /// Job changes from the whole cluster, for as long as the stream is consumed.
    /// Uses its own connection (a LISTEN must outlive any pooled lease) and keeps
    /// re-establishing it after outages; each (re)start yields `.listening`.
    /// Ending the iteration (or cancelling its task) closes the connection.
    public func listen() -> AsyncStream<JobEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self, bufferingPolicy: .bufferingNewest(10_000))
        let listener = Listener(configuration: configuration, logger: logger, continuation: continuation)
        let task = Task { await listener.run() }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}

struct Listener: Sendable {
    let configuration: JobStoreConfiguration
    let logger: Logger
    let continuation: AsyncStream<JobEvent>.Continuation

    /// A silent LISTEN connection cannot tell a quiet cluster from a dead peer;
    /// a periodic query on it finds out within this long.
    static let heartbeat: Duration = .seconds(5)

    func run() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await listenOnce { failures = 0 }
            } catch {
                logger.debug("job listener connection lost", metadata: ["error": "\(error)"])
            }
            if Task.isCancelled { break }
            failures += 1
            // 100 ms, 200 ms, ... capped at 2 s: quick to resume after a restart,
            // gentle on a server that is still down.
            try? await Task.sleep(for: .milliseconds(min(2000, 100 << min(failures - 1, 5))))
        }
        continuation.finish()
    }

    /// One connection's life: connect, LISTEN, forward notifications until it breaks.
    private func listenOnce(established: () -> Void) async throws {
        let connectionConfiguration = self.connectionConfiguration, logger = self.logger
        let connection = try await withDeadline(configuration.operationTimeout, "listen connect") {
            try await PostgresConnection.connect(
                configuration: connectionConfiguration, id: Int.random(in: 1...Int.max), logger: logger
            )
        }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await heartbeat(connection) }
                try await connection.listen(on: configuration.channel) { notifications in
                    established()
                    continuation.yield(.listening)
                    for try await notification in notifications {
                        forward(notification.payload)
                    }
                }
                group.cancelAll()
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    /// Closes the connection (ending the notification sequence) once a ping fails.
    private func heartbeat(_ connection: PostgresConnection) async throws {
        let logger = self.logger
        while !Task.isCancelled {
            try await Task.sleep(for: Self.heartbeat)
            do {
                try await withDeadline(configuration.operationTimeout, "listen heartbeat") {
                    try await connection.query("SELECT 1", logger: logger).collect()
                }
            } catch {
                try? await connection.close()
                throw error
            }
        }
    }

    private func forward(_ payload: String) {
        do {
            continuation.yield(.changed(try JSONDecoder().decode(JobChange.self, from: Data(payload.utf8))))
        } catch {
            logger.warning("unreadable job notification", metadata: ["payload": "\(payload)"])
        }
    }

    private var connectionConfiguration: PostgresConnection.Configuration {
        var c = PostgresConnection.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: .disable
        )
        let (seconds, attoseconds) = configuration.connectTimeout.components
        c.options.connectTimeout = .milliseconds(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        return c
    }
}
