import Engine
import Foundation

/// Whose work goes first when a compute thread frees up.
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

/// A fixed set of OS threads that run model computations, off the NIO event loops and
/// off Swift's cooperative pool (a forward pass holds a thread for tens of milliseconds
/// to seconds). Each thread sets its own OpenMP team size: OpenMP's thread count is
/// per calling thread.
///
/// Work waits in a priority order (interactive, job, bulk; FIFO within one). At most
/// `maxPending` interactive items wait; beyond that `run` throws `Overloaded`, which the
/// server answers with 429. A long job calls `runWaitingInteractive()` between its steps
/// so a heatmap never waits for a whole filter grid.
public final class ComputeExecutor: @unchecked Sendable {
    public struct Overloaded: Error, CustomStringConvertible {
        public let pending: Int
        public let retryAfterSeconds: Int
        public var description: String {
            "the server is busy: \(pending) computations are waiting; retry in \(retryAfterSeconds) s"
        }
    }

    /// Work offered after `shutdown()`.
    public struct Stopped: Error, CustomStringConvertible {
        public var description: String { "the server is shutting down and takes no new computations" }
    }

    private struct Item {
        let priority: ComputePriority
        let sequence: Int
        let work: () -> Void
    }

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var waiting: [Item] = []
    private var sequence = 0
    private var busy = 0
    private var stopping = false
    private var threads: [Thread] = []

    public let threadCount: Int
    public let ompThreads: Int
    public let maxPending: Int

    /// - Parameters:
    ///   - threads: compute threads.
    ///   - ompThreads: OpenMP threads per compute thread (0: all cores).
    ///   - maxPending: interactive items allowed to wait.
    public init(threads: Int, ompThreads: Int, maxPending: Int) {
        self.threadCount = max(1, threads)
        self.ompThreads = ompThreads > 0 ? ompThreads : ProcessInfo.processInfo.activeProcessorCount
        self.maxPending = max(1, maxPending)
        for i in 0..<threadCount {
            let t = Thread { self.workerLoop() }  // the thread ends after shutdown()
            t.name = "convlens-compute-\(i)"
            t.stackSize = 16 << 20
            self.threads.append(t)
            t.start()
        }
    }

    /// Items waiting (all priorities) and items running.
    public var load: (waiting: Int, running: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (waiting.count, busy)
    }

    /// Runs `body` on a compute thread and returns its result.
    public func run<T: Sendable>(
        _ priority: ComputePriority = .interactive,
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let rejected: (any Error)? = enqueue(priority) {
                continuation.resume(with: Result { try body() })
            }
            if let rejected { continuation.resume(throwing: rejected) }
        }
    }

    private func enqueue(_ priority: ComputePriority, _ work: @escaping () -> Void) -> (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        if stopping { return Stopped() }
        if priority == .interactive {
            let pending = waiting.lazy.filter { $0.priority == .interactive }.count
            if pending >= maxPending {
                return Overloaded(pending: pending, retryAfterSeconds: 1 + pending / max(1, threadCount))
            }
        }
        sequence += 1
        let item = Item(priority: priority, sequence: sequence, work: work)
        // Keep `waiting` sorted: after every item of the same or higher priority.
        let at = waiting.firstIndex { $0.priority > priority } ?? waiting.count
        waiting.insert(item, at: at)
        condition.signal()
        return nil
    }

    /// Called by long work between its steps, on a compute thread: runs the
    /// interactive items that are waiting, then returns.
    public func runWaitingInteractive() {
        while true {
            condition.lock()
            guard let first = waiting.first, first.priority == .interactive else {
                condition.unlock()
                return
            }
            waiting.removeFirst()
            condition.unlock()
            first.work()
        }
    }

    private func workerLoop() {
        ComputeThreads.set(ompThreads)
        while true {
            condition.lock()
            while waiting.isEmpty && !stopping { condition.wait() }
            if waiting.isEmpty && stopping {
                condition.unlock()
                return
            }
            let item = waiting.removeFirst()
            busy += 1
            condition.unlock()
            item.work()
            condition.lock()
            busy -= 1
            condition.unlock()
        }
    }

    /// Lets the threads finish what is queued, then end.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }
}
