import Engine
import Foundation
import Synchronization
import Testing

@testable import Server

/// The sharing rule on its own, with simulated time.
@Suite struct FairShareTests {
    typealias Claim = FairShare.Claim

    @Test func aClientThatUsedLessGoesFirstAndEqualsGoInArrivalOrder() {
        var policy = FairShare(jobShare: 0.4)
        let heavy = Claim(priority: .interactive, client: "a", sequence: 1)
        let light = Claim(priority: .interactive, client: "b", sequence: 2)
        #expect(policy.precedes(heavy, light), "no use yet: first come first served")
        policy.charge(heavy, seconds: 0.5, now: 0)
        #expect(policy.precedes(light, heavy))
        #expect(policy.first(of: [heavy, light]) == 1)
        // Use decays: two seconds' half-life, so after a minute it is forgotten.
        #expect(policy.use(ofClient: "a") == 0.5)
        policy.charge(light, seconds: 0.01, now: 60)
        #expect(policy.use(ofClient: "a") == 0, "a forgotten client leaves the table")
        #expect(policy.precedes(heavy, light))
    }

    @Test func aSingleFilterGoesBeforeABulkGridWhateverTheirUse() {
        var policy = FairShare(jobShare: 0.4)
        let grid = Claim(priority: .bulk, client: "", sequence: 1)
        let filter = Claim(priority: .job, client: "", sequence: 2)
        policy.charge(filter, seconds: 10, now: 0)
        #expect(policy.precedes(filter, grid))
    }

    /// Both classes always waiting, one slot handed on every 10 ms: each class gets its share.
    @Test(arguments: [0.25, 0.4, 0.6]) func jobsAndInteractiveWorkSplitTheSlotByTheShare(jobShare: Double) {
        var policy = FairShare(jobShare: jobShare)
        let job = Claim(priority: .job, client: "", sequence: 1)
        let interactive = Claim(priority: .interactive, client: "x", sequence: 2)
        var jobTime = 0.0
        var t = 0.0
        while t < 30 {
            let next = policy.first(of: [job, interactive]) == 0 ? job : interactive
            policy.charge(next, seconds: 0.01, now: t)
            if next == job { jobTime += 0.01 }
            t += 0.01
        }
        #expect(abs(jobTime / t - jobShare) < 0.02, "jobs got \(jobTime / t) of the slot, share \(jobShare)")
    }
}

/// A counter and a flag the test's closures share.
final class Count: Sendable {
    private let value = Atomic<Int>(0)
    var now: Int { value.load(ordering: .relaxed) }
    func add() { value.add(1, ordering: .relaxed) }
}

final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// `ComputeExecutor` with plain closures that cross boundaries: who runs when. One test
/// at a time: each spins a core, which the rest of a full run needs.
@Suite(.serialized, .timeLimit(.minutes(3))) struct FairComputeTests {
    /// Busy work of about `milliseconds`, crossing a boundary every millisecond.
    static func work(milliseconds: Int, done: Count? = nil) throws {
        for _ in 0..<milliseconds {
            let end = ContinuousClock.now + .milliseconds(1)
            while ContinuousClock.now < end {}
            try ComputeBoundary.cross()
            done?.add()
        }
    }

    static func waitUntil(_ condition: () -> Bool) async throws {
        let end = ContinuousClock.now + .seconds(60)
        while !condition(), ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(2)) }
    }

    @Test func anotherClientsShortRequestOvertakesALongOneAtItsNextBoundary() async throws {
        let executor = ComputeExecutor(threads: 1, ompThreads: 1, maxPending: 8, quantumSeconds: 0.002)
        let longDone = Count()
        // Endless but for the cancel below.
        let long = Task {
            try await executor.run(origin: ComputeOrigin(client: "a")) { try Self.work(milliseconds: 600_000, done: longDone) }
        }
        try await Self.waitUntil { longDone.now > 20 }
        // Read on b's thread as it computes: the long one is still inside its work.
        let progress = try await executor.run(origin: ComputeOrigin(client: "b")) { () -> Int in
            try Self.work(milliseconds: 5)
            return longDone.now
        }
        #expect(progress < 600_000 && executor.load.running + executor.load.waiting >= 1, "b ran while a was unfinished")
        #expect(executor.tally.yielded >= 1, "a handed its slot to b")
        long.cancel()
        await #expect(throws: ComputeExecutor.Cancelled.self) { try await long.value }
    }

    @Test func interruptedWorkEndsWithTheSameResultAsUninterruptedWork() async throws {
        let executor = ComputeExecutor(threads: 1, ompThreads: 1, maxPending: 32, quantumSeconds: 0)
        @Sendable func sum() throws -> Double {
            var x = 0.0
            for i in 0..<20_000 {
                x = x * 0.999 + sin(Double(i))
                if i % 100 == 0 { try ComputeBoundary.cross() }
            }
            return x
        }
        let alone = try await executor.run(origin: ComputeOrigin(client: "a"), sum)
        async let interrupted = executor.run(origin: ComputeOrigin(client: "a"), sum)
        async let others: Void = withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask { try await executor.run(origin: ComputeOrigin(client: "c\(i)")) { try Self.work(milliseconds: 1) } }
            }
            try await group.waitForAll()
        }
        try await others
        #expect(try await interrupted == alone)
        #expect(executor.tally.yielded >= 1, "the sum was interrupted at least once")
    }

    @Test func oneClientsWorkInFlightIsCappedByItsCostAndOthersAreNot() async throws {
        let executor = ComputeExecutor(threads: 1, ompThreads: 1, maxPending: 8, maxPendingCostPerClient: 100)
        let release = Flag()
        let running = Flag()
        let held = Task {
            try await executor.run(origin: ComputeOrigin(client: "a", cost: 80)) {
                running.set()
                while !release.isSet { usleep(1000) }
            }
        }
        try await Self.waitUntil { running.isSet }
        await #expect(throws: ComputeExecutor.ClientOverloaded.self) {
            try await executor.run(origin: ComputeOrigin(client: "a", cost: 30)) {}
        }
        let other = Task { try await executor.run(origin: ComputeOrigin(client: "b", cost: 30)) { 7 } }
        release.set()
        try await held.value
        #expect(try await other.value == 7)
        // The cost is given back when the work ends.
        #expect(try await executor.run(origin: ComputeOrigin(client: "a", cost: 90)) { 1 } == 1)
    }

    /// With the waiting list full, a client that already waits is refused and a client with
    /// nothing waiting is let in, up to twice the list.
    @Test func oneClientsBurstCannotShutOutAnother() async throws {
        let executor = ComputeExecutor(threads: 1, ompThreads: 1, maxPending: 2)
        let release = Flag()
        let running = Flag()
        let hold = Task {
            try await executor.run(origin: ComputeOrigin(client: "a")) {
                running.set()
                while !release.isSet { usleep(1000) }
            }
        }
        try await Self.waitUntil { running.isSet }
        let queued = (0..<2).map { _ in Task { try await executor.run(origin: ComputeOrigin(client: "a")) { 1 } } }
        try await Self.waitUntil { executor.load.waiting == 2 }
        await #expect(throws: ComputeExecutor.Overloaded.self) { try await executor.run(origin: ComputeOrigin(client: "a")) { 1 } }
        let others = (0..<2).map { i in Task { try await executor.run(origin: ComputeOrigin(client: "b\(i)")) { 2 } } }
        try await Self.waitUntil { executor.load.waiting == 4 }
        await #expect(throws: ComputeExecutor.Overloaded.self, "twice the list is the hard bound") {
            try await executor.run(origin: ComputeOrigin(client: "c")) { 1 }
        }
        release.set()
        try await hold.value
        for t in queued { #expect(try await t.value == 1) }
        for t in others { #expect(try await t.value == 2) }
    }

    @Test func workWhoseClientHungUpStopsAtItsNextBoundary() async throws {
        let executor = ComputeExecutor(threads: 1, ompThreads: 1, maxPending: 8)
        let gone = Flag()
        let done = Count()
        let work = Task {
            try await executor.run(origin: ComputeOrigin(client: "a") { gone.isSet }) {
                try Self.work(milliseconds: 60_000, done: done)
            }
        }
        try await Self.waitUntil { done.now > 5 }
        gone.set()
        do {
            try await work.value
            Issue.record("abandoned work ran to its end")
        } catch let e as ComputeExecutor.Cancelled {
            #expect(e.reason == ComputeExecutor.Cancelled.clientGone)
        }
        #expect(done.now < 60_000)
        #expect(try await executor.run { 42 } == 42, "the slot is free again")
    }

    /// A job keeps stepping while interactive requests of several clients always wait.
    @Test func aJobProgressesUnderAStreamOfInteractiveRequests() async throws {
        // Every hand-over of the slot is a thread switch, slow on a loaded machine: a 5 ms
        // quantum and a few hundred requests keep the test short there (it took over three
        // minutes with 600 requests and 2 ms in a full run on two cores).
        let executor = ComputeExecutor(threads: 1, ompThreads: 1, maxPending: 16, jobShare: 0.4, quantumSeconds: 0.005)
        let streamEnded = Flag()
        let stepsDuringStream = Count()
        let stream = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in 0..<4 {
                    group.addTask {
                        for _ in 0..<50 {
                            try await executor.run(origin: ComputeOrigin(client: "c\(client)")) { try Self.work(milliseconds: 4) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            streamEnded.set()
        }
        try await Self.waitUntil { executor.load.waiting > 0 }
        try await executor.run(.job) {
            for _ in 0..<50 {
                try Self.work(milliseconds: 2)
                if !streamEnded.isSet { stepsDuringStream.add() }
            }
        }
        try await stream.value
        // 4 clients × 50 × 4 ms is 800 ms of interactive slot time; the job needs 100 ms, under a
        // third of what its 40 % share gives it meanwhile. Run first come first served, or
        // interactive first, it would wait for the whole stream.
        #expect(stepsDuringStream.now == 50, "the job finished before the stream ended")
    }

    @Test func shutdownCancelsInteractiveWorkAtItsNextBoundary() async throws {
        let executor = ComputeExecutor(threads: 1, ompThreads: 1, maxPending: 8)
        let done = Count()
        let work = Task { try await executor.run(origin: ComputeOrigin(client: "a")) { try Self.work(milliseconds: 60_000, done: done) } }
        try await Self.waitUntil { done.now > 5 }
        executor.shutdown()
        await #expect(throws: ComputeExecutor.Stopped.self) { try await executor.run { 1 } }
        executor.cancelInteractive("shutting down")
        await #expect(throws: ComputeExecutor.Cancelled.self) { try await work.value }
    }
}
