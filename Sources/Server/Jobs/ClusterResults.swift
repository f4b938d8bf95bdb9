import Foundation
import JobStore
import NIOCore

/// Finished results in PostgreSQL with this process's memory (and optional disk) cache
/// in front: every replica serves what any worker finished, and a result fetched once
/// is served locally after that.
struct ClusterResults: ResultStore {
    let local: ResultCache
    let remote: PostgresResultStore

    func result(for key: String) async throws -> Data? {
        if let data = local.get(key) { return data }
        guard let stored = try await unavailableAsJobs({ try await remote.get(key: key) }) else { return nil }
        let data = Data(stored.bytes.readableBytesView)
        local.put(key, data)
        return data
    }

    func hasResult(for key: String) async throws -> Bool {
        if local.contains(key) { return true }
        return try await unavailableAsJobs { try await remote.contains(key: key) }
    }

}

/// Runs a store call; PostgreSQL being down becomes `JobsUnavailable` (503 jobs_unavailable).
func unavailableAsJobs<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch JobStoreError.unavailable(let why) {
        throw JobsUnavailable(description: "the job store (PostgreSQL) is unavailable: \(why); retry later")
    }
}
