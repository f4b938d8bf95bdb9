import Foundation

/// Who gets a compute slot next: the rule `ComputeExecutor` follows whenever a slot frees
/// up or running work reaches a boundary, kept apart from threads and locks so it can be
/// tested as it is.
///
/// Two classes share the slots: interactive requests and jobs. When both are waiting,
/// the one that used less than its share of the recent slot time goes first (`jobShare`
/// for jobs, the rest for interactive), so a stream of predictions cannot stop a grid, nor
/// a grid the predictions. Within the interactive class the client that used the least
/// recent time goes first — a client asking for one prediction overtakes another's
/// Score-CAM at its next boundary — and within one client, first come first served. Within
/// jobs, a more urgent priority first (a single filter before a bulk grid), then first come.
/// Recent use decays with `halfLife`, so old use is forgotten and nobody waits for ever.
struct FairShare {
    /// A piece of compute as the rule sees it.
    struct Claim: Equatable {
        var priority: ComputePriority
        var client: String
        /// Arrival order (first come first served among equals).
        var sequence: Int
    }

    let jobShare: Double
    let halfLife: Double
    private var classUse = [0.0, 0.0]  // interactive, jobs: decayed slot-seconds
    private var clientUse: [String: Double] = [:]
    private var decayedAt = 0.0

    init(jobShare: Double, halfLife: Double = 2) {
        self.jobShare = min(max(jobShare, 0.01), 0.99)
        self.halfLife = max(halfLife, 0.001)
    }

    private static func classIndex(_ p: ComputePriority) -> Int { p == .interactive ? 0 : 1 }

    /// The recent slot time of a client (interactive use only), for tests and progress.
    func use(ofClient client: String) -> Double { clientUse[client] ?? 0 }

    /// The recent slot time of a class.
    func use(of priority: ComputePriority) -> Double { classUse[Self.classIndex(priority)] }

    /// Records `seconds` of slot time used by `claim`, at time `now` (seconds, monotonic).
    mutating func charge(_ claim: Claim, seconds: Double, now: Double) {
        decay(to: now)
        classUse[Self.classIndex(claim.priority)] += seconds
        if claim.priority == .interactive { clientUse[claim.client, default: 0] += seconds }
    }

    private mutating func decay(to now: Double) {
        guard now > decayedAt else { return }
        let factor = pow(0.5, (now - decayedAt) / halfLife)
        decayedAt = now
        classUse = classUse.map { $0 * factor }
        for (client, use) in clientUse {
            let left = use * factor
            // Forgotten clients leave the table: it holds only recent ones.
            if left < 1e-4 { clientUse.removeValue(forKey: client) } else { clientUse[client] = left }
        }
    }

    /// Whether `a` goes before `b`.
    func precedes(_ a: Claim, _ b: Claim) -> Bool {
        let (ca, cb) = (Self.classIndex(a.priority), Self.classIndex(b.priority))
        if ca != cb {
            let owed = [1 - jobShare, jobShare]
            let (sa, sb) = (classUse[ca] / owed[ca], classUse[cb] / owed[cb])
            if sa != sb { return sa < sb }
            return ca < cb
        }
        if ca == 0 {
            let (ua, ub) = (use(ofClient: a.client), use(ofClient: b.client))
            if a.client != b.client, ua != ub { return ua < ub }
        } else if a.priority != b.priority {
            return a.priority < b.priority
        }
        return a.sequence < b.sequence
    }

    /// The index in `waiting` of the claim that goes first.
    func first(of waiting: [Claim]) -> Int? {
        guard var best = waiting.indices.first else { return nil }
        for i in waiting.indices.dropFirst() where precedes(waiting[i], waiting[best]) { best = i }
        return best
    }
}
