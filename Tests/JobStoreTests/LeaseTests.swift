import Foundation
import JobStore
import TestSupport
import Testing

extension JobStoreTests {
    /// Leases are expired by moving `lease_expires_at` into the past with SQL, not by
    /// sleeping: the whole suite runs in parallel on 2 cores, where a sleep of a lease's
    /// length says nothing about what the other calls took.
    @Test func expiredLeaseRequeuesThenFailsAfterMaxAttempts() async throws {
        let database = try TestDatabase.fresh()
        try await withStores(2, on: database) { stores in
            let (store, reaper) = (stores[0], stores[1])
            let queued = try await store.enqueue(newJob("crashy", maxAttempts: 2)).job
            func expire(_ id: UUID) throws {
                _ = try database.psql("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = '\(id)'")
            }

            let first = try #require(try await store.claim(modelDigests: nil, owner: "host-a:1", lease: .seconds(60)))
            #expect(first.id == queued.id && first.attempts == 1)
            // Only the owner may renew or report.
            await #expect(throws: JobStoreError.leaseLost(first.id)) { try await store.renew(id: first.id, owner: "host-b:2") }
            #expect(try await reaper.reapExpiredLeases() == ReapReport())  // not expired yet
            try expire(first.id)
            #expect(try await reaper.reapExpiredLeases() == ReapReport(requeued: [first.id]))
            let requeued = try #require(try await reaper.status(id: first.id))
            #expect(requeued.state == .queued && requeued.attempts == 1 && requeued.leaseOwner == nil)
            #expect(requeued.error?.contains("lease of host-a:1 expired") == true)
            // The vanished worker comes back: too late, its lease is gone.
            await #expect(throws: JobStoreError.leaseLost(first.id)) {
                try await store.progress(id: first.id, owner: "host-a:1", step: 1, steps: 10, loss: nil)
            }

            let second = try #require(try await store.claim(modelDigests: nil, owner: "host-c:3", lease: .seconds(60)))
            #expect(second.id == first.id && second.attempts == 2)
            try expire(second.id)
            #expect(try await reaper.reapExpiredLeases() == ReapReport(failed: [first.id]))
            let failed = try #require(try await reaper.status(id: first.id))
            #expect(failed.state == .failed && failed.attempts == 2 && failed.finishedAt != nil)
            #expect(failed.error == "lease of host-c:3 expired (attempt 2 of 2); giving up")
            #expect(try await store.claim(modelDigests: nil, owner: "host-c:3", lease: .seconds(1)) == nil)
        }
    }

    @Test func renewedAndProgressingLeasesAreNotReaped() async throws {
        let database = try TestDatabase.fresh()
        try await withStore(on: database) { store in
            _ = try await store.enqueue(newJob("slow-a"))
            _ = try await store.enqueue(newJob("slow-b"))
            let a = try #require(try await store.claim(modelDigests: nil, owner: "w:1", lease: .seconds(20)))
            let b = try #require(try await store.claim(modelDigests: nil, owner: "w:1", lease: .seconds(20)))
            for step in 1...6 {
                // As if nearly the whole lease had passed: the renewal and the progress report push it out again.
                _ = try database.psql("UPDATE jobs SET lease_expires_at = now() + interval '50 milliseconds'")
                let lease = try await store.renew(id: a.id, owner: "w:1")
                #expect(!lease.cancelRequested && lease.expiresAt > Date().addingTimeInterval(10))
                let reported = try await store.progress(id: b.id, owner: "w:1", step: step, steps: 6, loss: -Double(step))
                #expect(reported.expiresAt > Date().addingTimeInterval(10))
                try await Task.sleep(for: .milliseconds(100))
                #expect(try await store.reapExpiredLeases() == ReapReport())
            }
            let progressed = try #require(try await store.status(id: b.id))
            #expect(progressed.state == .running && progressed.step == 6 && progressed.steps == 6 && progressed.loss == -6)
        }
    }

    @Test func cancelQueuedAtOnceAndRunningAtTheNextStep() async throws {
        let database = try TestDatabase.fresh()
        try await withStores(2, on: database) { stores in
            let (api, worker) = (stores[0], stores[1])
            let waiting = try await api.enqueue(newJob("waiting", priority: .bulk)).job
            let running = try await api.enqueue(newJob("running", priority: .interactive)).job
            let claimed = try #require(try await worker.claim(modelDigests: nil, owner: "w:1", lease: .seconds(30)))
            #expect(claimed.id == running.id)

            #expect(try await api.cancel(id: waiting.id) == .cancelled)
            #expect(try await api.status(id: waiting.id)?.state == .cancelled)
            #expect(try await worker.claim(modelDigests: nil, owner: "w:1", lease: .seconds(30)) == nil)

            #expect(try await worker.progress(id: running.id, owner: "w:1", step: 1, steps: 100, loss: 0.5).cancelRequested == false)
            #expect(try await api.cancel(id: running.id) == .requested)
            #expect(try await api.status(id: running.id)?.state == .running)  // the worker decides when to stop
            #expect(try await worker.progress(id: running.id, owner: "w:1", step: 2, steps: 100, loss: 0.4).cancelRequested)
            try await worker.acknowledgeCancel(id: running.id, owner: "w:1")
            let stopped = try #require(try await api.status(id: running.id))
            #expect(stopped.state == .cancelled && stopped.step == 2 && stopped.finishedAt != nil)

            #expect(try await api.cancel(id: running.id) == .alreadyFinished(.cancelled))
            #expect(try await api.cancel(id: UUID()) == .notFound)
            // A new identical request brings a cancelled job back.
            #expect(try await api.enqueue(newJob("waiting")).outcome == .requeued)
        }
    }

    @Test func concurrentReapersHandleEachExpiredJobOnce() async throws {
        let database = try TestDatabase.fresh()
        try await withStores(3, on: database) { stores in
            var claimed: Set<UUID> = []
            for i in 0..<9 {
                _ = try await stores[0].enqueue(newJob("expiring-\(i)"))
                claimed.insert(try #require(try await stores[0].claim(modelDigests: nil, owner: "gone:1", lease: .milliseconds(200))).id)
            }
            try await Task.sleep(for: .milliseconds(400))
            let reports = try await withThrowingTaskGroup(of: ReapReport.self) { group in
                for store in stores { group.addTask { try await store.reapExpiredLeases() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let requeued = reports.flatMap(\.requeued)
            #expect(requeued.count == 9 && Set(requeued) == claimed)
            #expect(reports.allSatisfy { $0.failed.isEmpty && $0.cancelled.isEmpty })
            #expect(try database.psql("SELECT count(*) FROM jobs WHERE state = 'queued' AND attempts = 1") == "9")
        }
    }
}
