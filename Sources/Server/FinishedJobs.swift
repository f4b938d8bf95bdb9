/// The statuses of finished jobs, bounded in bytes. A finished job keeps only its status
/// (what `GET /jobs/{id}` answers; its work and upload are gone), so a record is a few
/// hundred bytes and the bound holds many times the queue. When it is full, records of
/// jobs that left no result (failed, cancelled) go first, oldest first; a done job's
/// record goes only when nothing else is left, so a submit-and-cancel loop cannot push
/// out the status of a job whose result is stored.
struct FinishedJobs {
    /// Ids in the order their jobs finished; popped from the front.
    private struct Order {
        private var ids: [String] = []
        private var head = 0

        mutating func append(_ id: String) { ids.append(id) }

        mutating func popFirst() -> String? {
            guard head < ids.count else { return nil }
            defer {
                head += 1
                // Drop the popped prefix once it is half the array: amortised O(1) per pop.
                if head * 2 >= ids.count {
                    ids.removeFirst(head)
                    head = 0
                }
            }
            return ids[head]
        }
    }

    let capacityBytes: Int
    private(set) var bytes = 0
    private var records: [String: (status: JobStatus, bytes: Int)] = [:]
    private var withoutResult = Order()
    private var done = Order()

    init(capacityBytes: Int) { self.capacityBytes = capacityBytes }

    var count: Int { records.count }

    subscript(id: String) -> JobStatus? { records[id]?.status }

    /// Keeps `status` (a finished job's), then removes records until the bound holds.
    mutating func insert(_ status: JobStatus) {
        let size = Self.recordBytes(status)
        if let old = records[status.id] { bytes -= old.bytes }
        records[status.id] = (status, size)
        bytes += size
        if status.state == .done { done.append(status.id) } else { withoutResult.append(status.id) }
        while bytes > capacityBytes, let id = withoutResult.popFirst() ?? done.popFirst() {
            if let gone = records.removeValue(forKey: id) { bytes -= gone.bytes }
        }
    }

    /// What a record holds: the status with its strings, the dictionary slot and the id in
    /// the order (an estimate: Swift's small strings live inline, larger ones in one buffer).
    static func recordBytes(_ s: JobStatus) -> Int {
        let strings = [s.id, s.kind, s.description, s.priority, s.result, s.error ?? "", s.worker ?? ""]
        return MemoryLayout<JobStatus>.stride + strings.reduce(0) { $0 + $1.utf8.count } + 2 * s.id.utf8.count
            + 2 * MemoryLayout<String>.stride + 32
    }
}
