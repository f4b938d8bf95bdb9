import Foundation
import JobStore
import Synchronization
import TestSupport
import Testing

/// All JobStore tests, one at a time: they share a PostgreSQL cluster and the
/// throughput figures would be meaningless with other tests running alongside.
@Suite(.serialized, .timeLimit(.minutes(2))) struct JobStoreTests {}

extension JobStoreTests {
    @Test func migrationIsIdempotentWhenProcessesStartTogether() async throws {
        let database = try TestDatabase.fresh()
        let versions = try await withStores(4, on: database, migrate: false) { stores in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for store in stores { group.addTask { try await store.migrate() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        #expect(versions == [2, 2, 2, 2])
        #expect(try database.psql("SELECT count(*) FROM convlens_schema_version") == "2")
        let again = try await withStore(on: database) { try await $0.migrate() }
        #expect(again == 2)
    }

    @Test func twentyFourJobsClaimedByThreeClaimersExactlyOnce() async throws {
        let database = try TestDatabase.fresh()
        let claims = try await withStores(3, on: database) { stores in
            for i in 0..<24 { _ = try await stores[0].enqueue(newJob("job-\(i)")) }
            return try await withThrowingTaskGroup(of: [(String, JobRecord)].self) { group in
                for (n, store) in stores.enumerated() {
                    group.addTask {
                        let owner = "claimer-\(n):\(n)"
                        var mine: [(String, JobRecord)] = []
                        while let job = try await store.claim(modelDigests: ["model-a"], owner: owner, lease: .seconds(30)) {
                            mine.append((owner, job))
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        #expect(claims.count == 24)
        #expect(Set(claims.map(\.1.id)).count == 24)
        #expect(Set(claims.map(\.1.key)) == Set((0..<24).map { "job-\($0)" }))
        for (owner, job) in claims {
            #expect(job.state == .running && job.attempts == 1 && job.leaseOwner == owner)
        }
        print("claims per claimer:", Dictionary(grouping: claims, by: \.0).mapValues(\.count).sorted { $0.key < $1.key })
    }

    @Test func claimOrderIsPriorityThenAgeAndRespectsModels() async throws {
        let database = try TestDatabase.fresh()
        try await withStore(on: database) { store in
            _ = try await store.enqueue(newJob("bulk", priority: .bulk))
            _ = try await store.enqueue(newJob("grid-1", priority: .grid))
            _ = try await store.enqueue(newJob("grid-2", priority: .grid))
            _ = try await store.enqueue(newJob("other-model", priority: .interactive, model: "model-b"))
            _ = try await store.enqueue(newJob("single", priority: .interactive))
            var order: [String] = []
            while let job = try await store.claim(modelDigests: ["model-a"], owner: "w:1", lease: .seconds(30)) {
                order.append(job.key)
            }
            #expect(order == ["single", "grid-1", "grid-2", "bulk"])
            #expect(try await store.claim(modelDigests: ["model-c"], owner: "w:1", lease: .seconds(30)) == nil)
            #expect(try await store.claim(modelDigests: nil, owner: "w:1", lease: .seconds(30))?.key == "other-model")
        }
    }

    @Test func identicalEnqueuesFromTwoClientsAreOneJob() async throws {
        let database = try TestDatabase.fresh()
        try await withStores(2, on: database) { stores in
            for round in 0..<20 {
                let key = "same-\(round)"
                async let a = stores[0].enqueue(newJob(key))
                async let b = stores[1].enqueue(newJob(key))
                let (first, second) = try await (a, b)
                #expect(first.job.id == second.job.id)
                #expect([first.outcome, second.outcome].filter { $0 == .created }.count == 1)
                #expect([first.outcome, second.outcome].filter { $0 == .existing }.count == 1)
            }
            #expect(try database.psql("SELECT count(*) FROM jobs") == "20")

            // A failed job is queued again by the next identical request, same id, fresh attempts.
            let original = try await stores[0].enqueue(newJob("flaky")).job
            let claimed = try #require(try await stores[0].claim(modelDigests: nil, owner: "w:1", lease: .seconds(30)))
            #expect(claimed.key == "same-0")  // oldest first; drain to reach "flaky"
            while let job = try await stores[0].claim(modelDigests: nil, owner: "w:1", lease: .seconds(30)) {
                if job.key == "flaky" { try await stores[0].fail(id: job.id, owner: "w:1", reason: "out of memory") }
            }
            #expect(try await stores[1].status(id: original.id)?.state == .failed)
            let again = try await stores[1].enqueue(newJob("flaky"))
            #expect(again.outcome == .requeued && again.job.id == original.id)
            #expect(again.job.state == .queued && again.job.attempts == 0 && again.job.error == nil)

            // A more urgent identical request raises a queued job's priority; a less urgent one does not lower it.
            let bulk = try await stores[0].enqueue(newJob("prerender", priority: .bulk)).job
            let urgent = try await stores[1].enqueue(newJob("prerender", priority: .grid))
            #expect(urgent.outcome == .existing && urgent.job.id == bulk.id && urgent.job.priority == .grid)
            #expect(try await stores[0].enqueue(newJob("prerender", priority: .bulk)).job.priority == .grid)
        }
    }

    @Test func countsByStateAndPriority() async throws {
        let database = try TestDatabase.fresh()
        try await withStore(on: database) { store in
            for i in 0..<3 { _ = try await store.enqueue(newJob("i\(i)", priority: .interactive)) }
            for i in 0..<2 { _ = try await store.enqueue(newJob("b\(i)", priority: .bulk)) }
            let job = try #require(try await store.claim(modelDigests: nil, owner: "w:1", lease: .seconds(30)))
            try await store.fail(id: job.id, owner: "w:1", reason: "bad layer")
            let counts = try await store.counts()
            #expect(
                counts == [
                    JobCount(state: .failed, priority: .interactive, count: 1),
                    JobCount(state: .queued, priority: .interactive, count: 2),
                    JobCount(state: .queued, priority: .bulk, count: 2),
                ])
        }
    }

    @Test func statementErrorsAreDatabaseErrorsNotOutages() async throws {
        let database = try TestDatabase.fresh()
        try await withStore(on: database) { store in
            var broken = newJob("broken")
            broken.requestJSON = "{not json"
            do {
                _ = try await store.enqueue(broken)
                Issue.record("invalid JSON was accepted")
            } catch let error as JobStoreError {
                guard case .database(let message) = error else {
                    Issue.record("expected .database, got \(error)")
                    return
                }
                #expect(message.hasPrefix("22P02"))  // invalid_text_representation
            }
            #expect(try await store.status(key: "broken") == nil)
        }
    }
}

extension JobStoreTests {
    @Test func queuedCountCountsOnlyWhatWaits() async throws {
        let database = try TestDatabase.fresh()
        try await withStore(on: database) { store in
            for key in ["q1", "q2", "q3"] { _ = try await store.enqueue(newJob(key)) }
            #expect(try await store.queuedCount() == 3)
            _ = try #require(try await store.claim(modelDigests: nil, owner: "w:1", lease: .seconds(30)))
            #expect(try await store.queuedCount() == 2)
            #expect(try await store.counts().filter { $0.state == .queued }.reduce(0) { $0 + $1.count } == 2)
        }
    }
}
