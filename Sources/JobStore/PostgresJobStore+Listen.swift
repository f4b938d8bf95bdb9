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
                let connection = try await connect()
                failures = 0  // the server is reachable: the next loss starts the backoff afresh
                try await listen(on: connection)
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

    private func connect() async throws -> PostgresConnection {
        let connectionConfiguration = self.connectionConfiguration
        let logger = self.logger
        return try await withDeadline(configuration.operationTimeout, "listen connect", discard: { try? await $0.close() }) {
            try await PostgresConnection.connect(
                configuration: connectionConfiguration, id: Int.random(in: 1...Int.max), logger: logger
            )
        }
    }

    /// One connection's life: LISTEN and forward notifications until the
    /// connection ends or the heartbeat finds it dead, whichever comes first.
    private func listen(on connection: PostgresConnection) async throws {
        do {
            try await forward(from: connection)
        } catch {
            try? await connection.close()  // awaited: the connection must be closed before it is released
            throw error
        }
        try? await connection.close()
    }

    private func forward(from connection: PostgresConnection) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await heartbeat(connection) }
            group.addTask {
                try await connection.listen(on: configuration.channel) { notifications in
                    continuation.yield(.listening)
                    for try await notification in notifications {
                        forward(notification.payload)
                    }
                }
            }
            defer { group.cancelAll() }
            _ = try await group.next()
        }
    }

    /// Throws once a ping on the LISTEN connection fails or times out.
    private func heartbeat(_ connection: PostgresConnection) async throws {
        let logger = self.logger
        while true {
            try await Task.sleep(for: Self.heartbeat)
            _ = try await withDeadline(configuration.operationTimeout, "listen heartbeat") {
                try await connection.query("SELECT 1", logger: logger).collect()
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
