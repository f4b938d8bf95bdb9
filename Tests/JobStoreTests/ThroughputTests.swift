import Foundation
import JobStore
import TestSupport
import Testing

extension JobStoreTests {
    /// Jobs per second through claim + progress + complete (a 16 KB result),
    /// one worker and then four workers with their own pools; then four again
    /// with synchronous_commit off, to show how much of the cost is the WAL
    /// flush of each commit (three per job). Prints, asserts only that every
    /// job got done exactly once.
    @Test func claimThroughput() async throws {
        for (workers, jobs, synchronousCommit) in [(1, 150, true), (4, 300, true), (4, 300, false)] {
            let database = try TestDatabase.fresh()
            if !synchronousCommit { _ = try database.psql("ALTER DATABASE \(database.name) SET synchronous_commit = off") }
            let result = pngSizedBlob(16 << 10)
            let (enqueueing, elapsed, done) = try await withStores(workers, on: database) { stores in
                let enqueueStarted = ContinuousClock.now
                for i in 0..<jobs { _ = try await stores[0].enqueue(newJob("t\(i)", priority: JobPriority.allCases[i % 3])) }
                let enqueueing = ContinuousClock.now - enqueueStarted
                let started = ContinuousClock.now
                let done = try await withThrowingTaskGroup(of: Int.self) { group in
                    for (n, store) in stores.enumerated() {
                        group.addTask {
                            var count = 0
                            while let job = try await store.claim(modelDigests: ["model-a"], owner: "w:\(n)", lease: .seconds(30)) {
                                try await store.progress(id: job.id, owner: "w:\(n)", step: 1, steps: 1, loss: 0)
                                try await store.complete(
                                    id: job.id, owner: "w:\(n)",
                                    result: StoredResult(key: "r-\(job.key)", contentType: "image/png", bytes: result))
                                count += 1
                            }
                            return count
                        }
                    }
                    return try await group.reduce(0, +)
                }
                return (enqueueing, ContinuousClock.now - started, done)
            }
            #expect(done == jobs)
            #expect(try database.psql("SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 1") == "\(jobs)")
            print(
                String(
                    format:
                        "claim throughput: %ld worker(s), %ld jobs in %.2f s = %.0f jobs/s (claim+progress+complete); enqueue (one client, sequential) %.0f jobs/s; synchronous_commit %@",
                    workers, jobs, elapsed.seconds, Double(jobs) / elapsed.seconds, Double(jobs) / enqueueing.seconds,
                    synchronousCommit ? "on" : "off"))
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
