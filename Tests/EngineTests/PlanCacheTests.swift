import Testing

@testable import Engine

@Suite struct PlanCacheTests {
    final class Counter: @unchecked Sendable {  // only touched from this test's thread
        var builds = 0
    }

    @Test func buildsOncePerKeyAndEvictsTheLeastRecentlyUsed() throws {
        let cache = PlanCache<Int, String>(capacity: 2)
        let counter = Counter()
        func get(_ k: Int) throws -> String {
            try cache.plan(for: k) {
                counter.builds += 1
                return "plan \(k)"
            }
        }
        #expect(try get(1) == "plan 1")
        #expect(try get(1) == "plan 1")
        #expect(counter.builds == 1)
        _ = try get(2)
        _ = try get(1)  // 1 is now the most recently used
        _ = try get(3)  // evicts 2
        #expect(cache.count == 2)
        #expect(counter.builds == 3)
        _ = try get(1)
        #expect(counter.builds == 3)
        _ = try get(2)  // rebuilt
        #expect(counter.builds == 4)
    }

    /// oneDNN fixes a primitive's thread count when it is created, so the
    /// calling thread's OpenMP setting is part of the key.
    @Test func theThreadCountIsPartOfTheKey() throws {
        let cache = PlanCache<Int, Int>(capacity: 8)
        let before = ComputeThreads.current
        defer { ComputeThreads.set(before) }
        ComputeThreads.set(1)
        let one = try cache.plan(for: 7) { ComputeThreads.current }
        ComputeThreads.set(2)
        let two = try cache.plan(for: 7) { ComputeThreads.current }
        #expect(one == 1)
        #expect(two == 2)
        #expect(cache.count == 2)
    }

    @Test func aFailedBuildIsNotCached() throws {
        let cache = PlanCache<Int, Int>()
        #expect(throws: EngineError.self) {
            try cache.plan(for: 1) { throw EngineError.invalidRequest("no") }
        }
        #expect(cache.count == 0)
        #expect(try cache.plan(for: 1) { 5 } == 5)
    }
}
