import Engine
import Foundation
import Synchronization

/// Whose work goes first when a compute slot frees up.
public enum ComputePriority: Int, Comparable, Sendable, Codable {
    /// A user waiting on a request (heatmap, activations, predict).
    case interactive = 0
    /// A job a user asked for (one filter).
    case job = 1
    /// Background and bulk work (grids, gallery pre-rendering).
    case bulk = 2

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public var name: String { ["interactive", "job", "bulk"][rawValue] }
}

/// Who a computation is for: the client it is counted against, what it costs (model
/// passes), and whether that client is still there to take the answer.
public struct ComputeOrigin: Sendable {
    /// The client's key (its address, or the proxy's forwarded one); "" is the service itself.
    public var client: String
    /// Model passes the work is estimated to make (`compute.max_pending_per_client` counts these).
    public var cost: Int
    /// True once nobody waits for the answer (the client hung up): the work stops at its next boundary.
    public var abandoned: @Sendable () -> Bool

    public init(client: String, cost: Int = 1, abandoned: @escaping @Sendable () -> Bool = { false }) {
        self.client = client
        self.cost = max(1, cost)
        self.abandoned = abandoned
    }

    /// The service's own work (jobs, dataset indexes): counted against nobody, never abandoned.
    public static let service = ComputeOrigin(client: "")
}

/// Runs model computations off the NIO event loops and off Swift's cooperative pool, on
/// `threads` compute slots shared fairly (`FairShare`): each computation gets an OS
/// thread of its own (from a small pool), which waits for a slot, computes, and at every
/// `ComputeBoundary` it crosses — each stage of a model pass, each step of a job — gives
/// the slot to a more deserving waiter and waits to get it back. So a prediction waits for
/// at most a few milliseconds of another client's Score-CAM, a single filter for one step
/// of a running grid, and the interrupted work resumes exactly where it stopped (its state
/// never left its thread's stack). Each thread sets its own OpenMP team size: OpenMP's
/// thread count is per calling thread.
///
/// Admission is bounded before any work starts: at most `maxPending` interactive
/// computations wait (`Overloaded`, 429) — twice that for clients with nothing waiting,
/// so one client's burst cannot shut the others out — and one client's interactive work in flight may
/// cost at most `maxPendingCostPerClient` passes beyond its first (`ClientOverloaded`, 429).
/// A computation whose client hung up, whose task was cancelled, or that is still running
/// when `cancelInteractive` is called stops at its next boundary (`Cancelled`).
public final class ComputeExecutor: @unchecked Sendable {
    public struct Overloaded: Error, CustomStringConvertible {
        public let pending: Int
        public let retryAfterSeconds: Int
        public var description: String {
            "the server is busy: \(pending) computations are waiting; retry in \(retryAfterSeconds) s"
        }
    }

    /// One client asked for more than its share of pending work.
    public struct ClientOverloaded: Error, CustomStringConvertible {
        public let pendingCost: Int
        public let cost: Int
        public let limit: Int
        public var description: String {
            "you have computations of \(pendingCost) model passes in flight; this one (\(cost)) would pass the limit of \(limit) per client (compute.max_pending_per_client): wait for them first"
        }
    }

    /// Work offered after `shutdown()`.
    public struct Stopped: Error, CustomStringConvertible {
        public var description: String { "the server is shutting down and takes no new computations" }
    }

    /// Work stopped before its end: its client went away, its task was cancelled, or the server shut down.
    public struct Cancelled: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "computation stopped: \(reason)" }
        public static let clientGone = "the client closed the connection"

    }

    /// What the executor reports as it happens (for the metrics).
    public enum Event: Sendable {
        /// A computation stopped before its end (`Cancelled`), with the reason.
        case stopped(String)
        /// A running computation gave its slot to a more deserving waiter at a boundary.
        case yielded
        /// A client's computation was refused for its pending cost (`ClientOverloaded`).
        case clientOverloaded
    }

    private final class Item: @unchecked Sendable {
        let claim: FairShare.Claim
        let origin: ComputeOrigin
        // Guarded by the executor's `condition`.
        var granted = false
        var holdsSlot = false
        var since = 0.0
        var cancelled: String?
        /// Admitted, never yet given a slot: counted against `maxPending`.
        var queued = true
        init(claim: FairShare.Claim, origin: ComputeOrigin) {
            self.claim = claim
            self.origin = origin
        }
    }

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var policy: FairShare
    private var waiting: [Item] = []
    private var running: [Item] = []
    private var freeSlots: Int
    private var sequence = 0
    private var stopping = false
    private var pendingCost: [String: Int] = [:]
    /// Interactive computations admitted and not yet started, in all and per client.
    private var queuedInteractive = 0
    private var queuedByClient: [String: Int] = [:]
    /// Every admitted computation not yet finished.
    private var live: [ObjectIdentifier: Item] = [:]
    private var idleThreads: [IdleThread] = []
    private let stoppedCount = Atomic<Int>(0)
    private let yieldCount = Atomic<Int>(0)
    private let events: @Sendable (Event) -> Void
    private let epoch = ContinuousClock.now

    public let threadCount: Int
    public let ompThreads: Int
    public let maxPending: Int
    public let maxPendingCostPerClient: Int
    /// Seconds a computation keeps its slot before a boundary may hand it on.
    public let quantum: Double

    /// - Parameters:
    ///   - threads: compute slots (computations that run at once).
    ///   - ompThreads: OpenMP threads per computation (0: all cores).
    ///   - maxPending: interactive computations allowed to wait.
    ///   - maxPendingCostPerClient: model passes one client may have in flight beyond its first computation.
    ///   - jobShare: the share of slot time jobs get while interactive work also waits.
    ///   - quantumSeconds: slot time before a boundary may hand the slot on.
    ///   - events: told of every stop, yield and per-client refusal.
    public init(
        threads: Int, ompThreads: Int, maxPending: Int, maxPendingCostPerClient: Int = .max, jobShare: Double = 0.4,
        quantumSeconds: Double = 0.01, events: @escaping @Sendable (Event) -> Void = { _ in }
    ) {
        self.events = events
        self.threadCount = max(1, threads)
        self.ompThreads = ompThreads > 0 ? ompThreads : ProcessInfo.processInfo.activeProcessorCount
        self.maxPending = max(1, maxPending)
        self.maxPendingCostPerClient = max(1, maxPendingCostPerClient)
        self.quantum = max(0, quantumSeconds)
        self.policy = FairShare(jobShare: jobShare)
        self.freeSlots = threadCount
    }

    /// Computations waiting for a slot (all priorities, including preempted ones) and running.
    public var load: (waiting: Int, running: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (waiting.count, running.count)
    }

    /// Computations stopped before their end, and slots handed on at boundaries, since start.
    public var tally: (stopped: Int, yielded: Int) {
        (stoppedCount.load(ordering: .relaxed), yieldCount.load(ordering: .relaxed))
    }

    private var now: Double {
        let d = ContinuousClock.now - epoch
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// Runs `body` on a compute thread once it has a slot, and returns its result.
    public func run<T: Sendable>(
        _ priority: ComputePriority = .interactive, origin: ComputeOrigin = .service,
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        let item: Item
        do { item = try admit(priority, origin) } catch let e as ClientOverloaded {
            events(.clientOverloaded)
            throw e
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                start { continuation.resume(with: Result { try self.execute(item, body) }) }
            }
        } onCancel: {
            self.cancel(item, "the request was cancelled")
        }
    }

    private func admit(_ priority: ComputePriority, _ origin: ComputeOrigin) throws -> Item {
        condition.lock()
        defer { condition.unlock() }
        if stopping { throw Stopped() }
        if priority == .interactive {
            // Counted from admission, not from when a thread reaches the waiting list, so a
            // burst cannot slip past. When the list is full a client with nothing waiting is
            // still let in, up to twice the limit: one client's burst cannot shut out the rest.
            let pending = queuedInteractive
            let mine = origin.client.isEmpty ? pending : queuedByClient[origin.client, default: 0]
            if pending >= maxPending, mine > 0 || pending >= 2 * maxPending {
                throw Overloaded(pending: pending, retryAfterSeconds: 1 + pending / max(1, threadCount))
            }
            if !origin.client.isEmpty {
                let already = pendingCost[origin.client] ?? 0
                if already > 0, already + origin.cost > maxPendingCostPerClient {
                    throw ClientOverloaded(pendingCost: already, cost: origin.cost, limit: maxPendingCostPerClient)
                }
                pendingCost[origin.client] = already + origin.cost
            }
        }
        sequence += 1
        let item = Item(claim: .init(priority: priority, client: origin.client, sequence: sequence), origin: origin)
        if priority == .interactive {
            queuedInteractive += 1
            queuedByClient[origin.client, default: 0] += 1
        }
        live[ObjectIdentifier(item)] = item
        return item
    }

    /// `item` leaves the admitted-not-started count (given a slot, or ended before). `condition` is locked.
    private func dequeue(_ item: Item) {
        guard item.queued else { return }
        item.queued = false
        guard item.claim.priority == .interactive else { return }
        queuedInteractive -= 1
        let left = queuedByClient[item.claim.client, default: 1] - 1
        if left > 0 { queuedByClient[item.claim.client] = left } else { queuedByClient.removeValue(forKey: item.claim.client) }
    }

    private func execute<T>(_ item: Item, _ body: () throws -> T) throws -> T {
        defer { finish(item) }
        do {
            try acquire(item)
            return try ComputeBoundary.with({ try self.boundary(item) }) { try body() }
        } catch let stop as Cancelled {
            stoppedCount.add(1, ordering: .relaxed)
            events(.stopped(stop.reason))
            throw stop
        }
    }

    // MARK: - Slots

    /// Waits (parked) until the policy hands `item` a slot. Called with `condition` unlocked.
    private func acquire(_ item: Item) throws {
        condition.lock()
        defer { condition.unlock() }
        try wait(item)
    }

    /// Puts `item` among the waiters, hands out free slots, and parks until `item` has one.
    /// `condition` is locked.
    private func wait(_ item: Item) throws {
        item.granted = false
        waiting.append(item)
        grantFreeSlots()
        while !item.granted {
            if let reason = item.cancelled {
                waiting.removeAll { $0 === item }
                throw Cancelled(reason: reason)
            }
            condition.wait()
        }
    }

    /// Gives every free slot to the waiter the policy puts first. `condition` is locked.
    private func grantFreeSlots() {
        var woke = false
        while freeSlots > 0, let i = policy.first(of: waiting.map(\.claim)) {
            let next = waiting.remove(at: i)
            dequeue(next)
            next.granted = true
            next.holdsSlot = true
            next.since = now
            running.append(next)
            freeSlots -= 1
            woke = true
        }
        if woke { condition.broadcast() }
    }

    /// Gives up `item`'s slot, charging its time. `condition` is locked.
    private func releaseSlot(_ item: Item) {
        guard item.holdsSlot else { return }
        policy.charge(item.claim, seconds: now - item.since, now: now)
        item.holdsSlot = false
        running.removeAll { $0 === item }
        freeSlots += 1
    }

    /// A boundary of `item`'s work, on its own thread with its slot.
    private func boundary(_ item: Item) throws {
        if item.origin.abandoned() { cancel(item, Cancelled.clientGone) }
        condition.lock()
        defer { condition.unlock() }
        if let reason = item.cancelled { throw Cancelled(reason: reason) }
        guard !waiting.isEmpty else { return }
        let t = now
        guard t - item.since >= quantum else { return }
        policy.charge(item.claim, seconds: t - item.since, now: t)
        item.since = t
        guard let i = policy.first(of: waiting.map(\.claim)), policy.precedes(waiting[i].claim, item.claim) else { return }
        item.holdsSlot = false
        running.removeAll { $0 === item }
        freeSlots += 1
        yieldCount.add(1, ordering: .relaxed)
        events(.yielded)
        try wait(item)
    }

    private func finish(_ item: Item) {
        condition.lock()
        defer { condition.unlock() }
        releaseSlot(item)
        dequeue(item)
        live.removeValue(forKey: ObjectIdentifier(item))
        if item.claim.priority == .interactive, !item.origin.client.isEmpty {
            let left = (pendingCost[item.origin.client] ?? 0) - item.origin.cost
            if left > 0 { pendingCost[item.origin.client] = left } else { pendingCost.removeValue(forKey: item.origin.client) }
        }
        grantFreeSlots()
    }

    private func cancel(_ item: Item, _ reason: String) {
        condition.lock()
        defer { condition.unlock() }
        if item.cancelled == nil { item.cancelled = reason }
        condition.broadcast()
    }

    /// Stops every interactive computation at its next boundary (the end of a shutdown's grace).
    public func cancelInteractive(_ reason: String) {
        condition.lock()
        defer { condition.unlock() }
        for item in live.values where item.claim.priority == .interactive && item.cancelled == nil {
            item.cancelled = reason
        }
        condition.broadcast()
    }

    /// Takes no new work; what was admitted runs on.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.unlock()
    }

    // MARK: - Threads

    /// An idle pool thread, parked until it is handed work.
    private final class IdleThread: @unchecked Sendable {
        let ready = NSCondition()
        var work: (@Sendable () -> Void)?
    }

    /// Runs `work` on an idle pool thread, or a new one. Threads stay for reuse (keeping
    /// their OpenMP teams) up to twice the slots plus two; beyond that they end.
    private func start(_ work: @escaping @Sendable () -> Void) {
        condition.lock()
        let idle = idleThreads.popLast()
        condition.unlock()
        if let idle {
            idle.ready.lock()
            idle.work = work
            idle.ready.signal()
            idle.ready.unlock()
            return
        }
        let thread = Thread { [self] in
            ComputeThreads.set(ompThreads)
            var next: (@Sendable () -> Void)? = work
            while let job = next {
                job()
                next = park()
            }
        }
        thread.name = "convlens-compute"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Waits on the idle list for the next work; nil when the pool has enough idle threads.
    private func park() -> (@Sendable () -> Void)? {
        let me = IdleThread()
        condition.lock()
        guard idleThreads.count < 2 * threadCount + 2 else {
            condition.unlock()
            return nil
        }
        me.ready.lock()
        idleThreads.append(me)
        condition.unlock()
        while me.work == nil { me.ready.wait() }
        let work = me.work
        me.ready.unlock()
        return work
    }
}
