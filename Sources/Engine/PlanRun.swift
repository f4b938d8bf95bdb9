import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A plan's run in progress: the outputs still to be read, how many reads
/// each has left, and the outputs the caller keeps.
struct PlanRun: Sendable {
    private var live: [Int: Tensor]
    private var readers: [Int: Int] = [:]
    private let kept: Set<Int>
    private(set) var out: [Int: Tensor] = [:]

    init(plan: InferencePlan, input: Tensor, kept: Set<Int>) {
        for step in plan.steps { for i in step.inputs { readers[i, default: 0] += 1 } }
        live = [0: input]
        self.kept = kept
        if kept.contains(0) { out[0] = input }
    }

    /// A step's inputs. An input read for the last time is handed over, not
    /// copied: a fused residual add writes into it in place.
    mutating func take(_ inputs: [Int]) -> [Tensor] {
        inputs.map { i in
            readers[i]! -= 1
            return readers[i] == 0 ? live.removeValue(forKey: i)! : live[i]!
        }
    }

    /// A step's output: held while later steps will read it, and kept when asked for.
    mutating func store(_ y: Tensor, of node: Int) {
        if readers[node, default: 0] > 0 { live[node] = y }
        if kept.contains(node) { out[node] = y }
    }

    /// Runs one step of `plan` on the calling thread's compute threads.
    mutating func run(_ step: InferencePlan.Step) throws {
        var args = take(step.inputs)
        store(try step.run(&args), of: step.node)
    }
}

extension BranchSchedule.Branches {
    private struct Progress: Sendable {
        var run: PlanRun
        /// Per step: how many of the steps it waits for have not finished.
        var waiting: [Int]
        var ready: [Int]
        var unfinished: Int
        var failure: (any Error)?
    }

    private enum Next {
        case run(Int, [Tensor])
        case wait
        case done
    }

    /// Runs the stage's steps on up to `BranchSchedule.threads` threads, each
    /// step on one thread (oneDNN sees a parallel region and does not split it);
    /// the first error stops the stage once the running steps have finished.
    func run(_ planSteps: [InferencePlan.Step], _ state: PlanRun) throws -> PlanRun {
        let progress = Mutex(
            Progress(
                run: state, waiting: waitsFor, ready: waitsFor.indices.filter { waitsFor[$0] == 0 },
                unfinished: steps.count))
        // The caller's numerics is a task-local: the team's other thread runs no task of
        // the caller's, so each thread takes it in explicitly.
        let numerics = Numerics.current
        onTeam(BranchSchedule.threads) { _, _ in
            // The primitives a thread makes here are sized for one thread (the
            // layers' plan caches key on it); the count is this region's own.
            ComputeThreads.set(1)
            Numerics.$current.withValue(numerics) {
                workOnSteps(planSteps, progress)
            }
        }
        // Moved out, so the tensors it holds stay uniquely referenced (in-place writes stay in place).
        return try progress.withLock { s in
            if let failure = s.failure { throw failure }
            return s.run
        }
    }

    /// One thread's share of the stage: the ready step with the highest priority, until none is left.
    private func workOnSteps(_ planSteps: [InferencePlan.Step], _ progress: borrowing Mutex<Progress>) {
        while true {
            let next = progress.withLock { s -> Next in
                guard s.failure == nil, s.unfinished > 0 else { return .done }
                guard let k = s.ready.indices.max(by: { priority[s.ready[$0]] < priority[s.ready[$1]] }) else {
                    return .wait
                }
                let p = s.ready.remove(at: k)
                return .run(p, s.run.take(planSteps[steps[p]].inputs))
            }
            switch next {
            case .done:
                return
            case .wait:
                sched_yield()
            case .run(let p, var args):
                let step = planSteps[steps[p]]
                do {
                    let y = try step.run(&args)
                    progress.withLock { s in
                        s.run.store(y, of: step.node)
                        s.unfinished -= 1
                        for q in unblocks[p] {
                            s.waiting[q] -= 1
                            if s.waiting[q] == 0 { s.ready.append(q) }
                        }
                    }
                } catch {
                    progress.withLock { s in if s.failure == nil { s.failure = error } }
                }
            }
        }
    }
}
