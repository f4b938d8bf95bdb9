import Foundation
import JobStore
import Logging
import NIOCore
import TestSupport

/// A fresh database in a cluster, so each test starts from an empty schema.
struct TestDatabase {
    let cluster: PostgresCluster
    let name: String

    static func fresh(in cluster: PostgresCluster = .shared) throws -> TestDatabase {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        _ = try cluster.psql("CREATE DATABASE \(name)")
        return TestDatabase(cluster: cluster, name: name)
    }

    /// Runs SQL in this database with psql (a connection outside the store under test).
    func psql(_ sql: String) throws -> String {
        try cluster.psql(sql, database: name)
    }

    /// Generous timeouts: the whole suite runs in parallel on 2 cores (compilers too, on a
    /// developer's machine); a slow answer is not an outage.
    func configuration(timeout: Duration = .seconds(15)) -> JobStoreConfiguration {
        var c = JobStoreConfiguration(host: "127.0.0.1", port: cluster.port, username: cluster.username, database: name)
        c.operationTimeout = timeout
        c.connectTimeout = .seconds(1)
        return c
    }
}

/// Runs `body` with `count` independent stores (separate pools, as separate
/// processes would have) on `database`, migrated, their pools running.
func withStores<T: Sendable>(
    _ count: Int, on database: TestDatabase, timeout: Duration = .seconds(15), migrate: Bool = true,
    _ body: @Sendable ([PostgresJobStore]) async throws -> T
) async throws -> T {
    var logger = Logger(label: "jobstore-test")
    logger.logLevel = .warning  // the pool logs every refused connection at info during the outage test
    let stores = (0..<count).map { _ in PostgresJobStore(configuration: database.configuration(timeout: timeout), logger: logger) }
    return try await withThrowingTaskGroup(of: Void.self) { group in
        for store in stores { group.addTask { await store.run() } }
        if migrate { try await stores[0].migrate() }
        let result = try await body(stores)
        group.cancelAll()
        return result
    }
}

func withStore<T: Sendable>(
    on database: TestDatabase, timeout: Duration = .seconds(15), _ body: @Sendable (PostgresJobStore) async throws -> T
) async throws -> T {
    try await withStores(1, on: database, timeout: timeout) { try await body($0[0]) }
}

func newJob(_ key: String, priority: JobPriority = .interactive, model: String = "model-a", maxAttempts: Int = 3) -> NewJob {
    NewJob(
        key: key, kind: "filter", requestJSON: #"{"layer": "conv1", "filter": 3, "key": "\#(key)"}"#,
        modelDigest: model, priority: priority, maxAttempts: maxAttempts)
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return false
}

/// Bytes shaped like a PNG (signature + random body), for result round trips.
func pngSizedBlob(_ count: Int) -> ByteBuffer {
    var buffer = ByteBuffer(bytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<(count - 8) / 8 { buffer.writeInteger(generator.next() as UInt64) }
    while buffer.readableBytes < count { buffer.writeInteger(UInt8.random(in: 0...255)) }
    return buffer
}
