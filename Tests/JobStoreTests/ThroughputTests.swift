import Foundation
import JobStore
import Testing
import TestSupport

extension JobStoreTests {
    /// Jobs per second through claim + progress + complete (a 16 KB result),
    /// one worker and then four workers with their own pools. Prints, asserts
    /// only that every job got done exactly once.
    @Test func claimThroughput() async throws {
        for (workers, jobs) in [(1, 150), (4, 300)] {
            let database = try TestDatabase.fresh()
            let result = pngSizedBlob(16 << 10)
            let (elapsed, done) = try await withStores(workers, on: database) { stores in
                for i in 0..<jobs { _ = try await stores[0].enqueue(newJob("t\(i)", priority: JobPriority.allCases[i % 3])) }
                let started = ContinuousClock.now
                let done = try await withThrowingTaskGroup(of: Int.self) { group in
                    for (n, store) in stores.enumerated() {
                        group.addTask {
                            var count = 0
                            while let job = try await store.claim(modelDigests: ["model-a"], owner: "w:\(n)", lease: .seconds(30)) {
                                try await store.progress(id: job.id, owner: "w:\(n)", step: 1, steps: 1, loss: 0)
                                try await store.complete(id: job.id, owner: "w:\(n)",
                                                         result: StoredResult(key: "r-\(job.key)", contentType: "image/png", bytes: result))
                                count += 1
                            }
                            return count
                        }
                    }
                    return try await group.reduce(0, +)
                }
                return (ContinuousClock.now - started, done)
            }
            #expect(done == jobs)
            #expect(try database.cluster.psql("SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 1")
                .trimmingCharacters(in: .whitespacesAndNewlines) == "\(jobs)")
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print(String(format: "claim throughput: %d worker(s), %d jobs in %.2f s = %.0f jobs/s (claim+progress+complete)",
                         workers, jobs, seconds, Double(jobs) / seconds))
        }
    }
}
