import Foundation
import JobStore
import TestSupport
import Testing

extension JobStoreTests {
    @Test func aJobStopsWhenItsLastRequestIsWithdrawn() async throws {
        let database = try TestDatabase.fresh()
        try await withStore(on: database) { store in
            let (mine, created) = try await store.request(newJob("shared"))
            let (theirs, joined) = try await store.request(newJob("shared"))
            #expect(created == .created && joined == .existing)
            #expect(mine.job.id == theirs.job.id && mine.id != theirs.id)
            #expect(theirs.requesters == 2)

            #expect(try await store.withdraw(request: mine.id) == .withdrawn(others: 1))
            #expect(try await store.withdraw(request: mine.id) == .unchanged, "a request is withdrawn once")
            let left = try #require(try await store.request(id: theirs.id))
            #expect(left.job.state == .queued && left.requesters == 1 && left.withdrawnAt == nil)
            #expect(try await store.request(id: mine.id)?.withdrawnAt != nil)

            #expect(try await store.withdraw(request: theirs.id) == .cancelled(.cancelled))
            #expect(try await store.status(id: mine.job.id)?.state == .cancelled)
            #expect(try await store.withdraw(request: UUID()) == .notFound)
        }
    }

    /// The last requester withdraws a running job and someone asks again before the worker
    /// reaches its next step: the worker is not told to stop, or if it already stopped the
    /// job goes back to the queue instead of ending cancelled under the new request.
    @Test func aRequestRevivesAJobBeingStopped() async throws {
        let database = try TestDatabase.fresh()
        try await withStore(on: database) { store in
            let (first, _) = try await store.request(newJob("revived"))
            let running = try #require(try await store.claim(modelDigests: nil, owner: "host-a:1", lease: .seconds(60)))
            #expect(try await store.withdraw(request: first.id) == .cancelled(.requested))
            #expect(try await store.progress(id: running.id, owner: "host-a:1", step: 1, steps: 9, loss: nil).cancelRequested)

            let (again, outcome) = try await store.request(newJob("revived"))
            #expect(outcome == .existing && again.job.id == running.id && again.requesters == 1)
            #expect(!(try await store.progress(id: running.id, owner: "host-a:1", step: 2, steps: 9, loss: nil).cancelRequested))

            // The worker had stopped on the first answer: the job is queued again, not cancelled.
            try await store.acknowledgeCancel(id: running.id, owner: "host-a:1")
            let requeued = try #require(try await store.status(id: running.id))
            #expect(requeued.state == .queued && requeued.finishedAt == nil && requeued.leaseOwner == nil)
            let reclaimed = try #require(try await store.claim(modelDigests: nil, owner: "host-b:2", lease: .seconds(60)))
            #expect(reclaimed.id == running.id && reclaimed.attempts == 1)
        }
    }

    @Test func concurrentRequestsAndWithdrawalsNeverLeaveAWaitingRequestOnACancelledJob() async throws {
        let database = try TestDatabase.fresh()
        try await withStores(4, on: database) { stores in
            for round in 0..<20 {
                let key = "race-\(round)"
                let (first, _) = try await stores[0].request(newJob(key))
                async let withdrawn = stores[1].withdraw(request: first.id)
                async let joined = stores[2].request(newJob(key))
                let (_, (request, _)) = try await (withdrawn, joined)
                let now = try #require(try await stores[3].request(id: request.id))
                #expect(now.withdrawnAt == nil)
                #expect(now.job.state == .queued && !now.job.cancelRequested, "round \(round): \(now.job.state)")
            }
        }
    }
}
