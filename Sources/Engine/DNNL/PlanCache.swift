import Synchronization

/// A small, thread-safe, least-recently-used cache of oneDNN plans (primitives
/// plus reorders) keyed by input shape, batch included.
///
/// A plan is built under the lock (so two threads never build the same plan
/// twice, and weight reorders happen once); it is executed outside the lock.
/// The bound keeps a server that sees many image sizes from growing without
/// limit: each plan may hold reordered weights and a compiled kernel.
///
/// The calling thread's OpenMP thread count is part of the key: oneDNN fixes a
/// primitive's work split (and the number of threads it will start) when the
/// primitive is created, so a plan built for 1 thread keeps running on 1
/// thread after `ComputeThreads.set(2)`, and vice versa.
final class PlanCache<Key: Hashable & Sendable, Plan: Sendable>: Sendable {
    private struct Slot: Hashable {
        let key: Key
        let threads: Int
    }

    private struct Entries {
        var plans: [Slot: Plan] = [:]
        var order: [Slot] = []  // least recently used first
    }

    private let entries = Mutex(Entries())
    let capacity: Int

    init(capacity: Int = 8) {
        self.capacity = max(1, capacity)
    }

    func plan(for key: Key, build: () throws -> Plan) throws -> Plan {
        let key = Slot(key: key, threads: ComputeThreads.current)
        return try entries.withLock { e -> Plan in
            if let p = e.plans[key] {
                if let i = e.order.firstIndex(of: key) { e.order.remove(at: i) }
                e.order.append(key)
                return p
            }
            let p = try build()
            e.plans[key] = p
            e.order.append(key)
            while e.order.count > capacity {
                e.plans[e.order.removeFirst()] = nil
            }
            return p
        }
    }

    var count: Int { entries.withLock { $0.plans.count } }
}

/// One array of constants (a kernel or a bias) in the layouts primitives ask
/// for: each layout is reordered from the plain source once, on first request,
/// and shared by every plan (forward and backward) that wants it.
final class ReorderedConstants: Sendable {
    private let source: [Float]
    /// How `source` is laid out: logical dims and the element strides of the plain array.
    private let dims: [Int]
    private let strides: [Int]
    private let layouts = Mutex<[DNNLMemory]>([])

    init(_ source: [Float], dims: [Int], strides: [Int]) {
        self.source = source
        self.dims = dims
        self.strides = strides
    }

    /// The constants in layout `md`.
    func memory(in md: MemoryDesc) throws -> DNNLMemory {
        try layouts.withLock { cached in
            if let m = cached.first(where: { MD.equal($0.desc, md) }) { return m }
            let m = try DNNLMemory.reordered(source, plain: MD.strided(dims, strides: strides), to: md)
            cached.append(m)
            return m
        }
    }
}
