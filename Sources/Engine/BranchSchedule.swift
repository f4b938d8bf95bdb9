/// The order in which a plan's steps run, and which of them may run side by side.
///
/// Inception-style blocks fork one tensor into branches that meet again at a
/// Concatenate. oneDNN splits each of the branches' convolutions between the
/// compute threads; on two threads, the small maps of those blocks (17×17,
/// 8×8) split badly, and a thread running a whole convolution on its own gets
/// more done than half of a shared one. So on exactly two compute threads, the
/// steps between a fork and its join run as a `Branches` stage: each thread
/// takes the ready step with the most work on the path ahead of it and runs it
/// on one thread, until the stage is done. Everything else runs one step at a
/// time on all compute threads.
///
/// Stages in order; the steps of a stage run after every step of the stages
/// before it, so a stage only reads what earlier stages made.
struct BranchSchedule: Sendable {
    enum Stage: Sendable {
        /// One step, on every compute thread.
        case step(Int)
        /// Steps that may run side by side, one thread each.
        case branches(Branches)
    }

    /// Steps (plan indices) between a fork and its join, and how they depend on each other.
    struct Branches: Sendable {
        /// Plan indices, in plan order.
        let steps: [Int]
        /// For each of `steps`, how many of the others it waits for.
        let waitsFor: [Int]
        /// For each of `steps`, the positions (in `steps`) of those that wait for it.
        let unblocks: [[Int]]
        /// For each of `steps`, the work on the heaviest path from it to the
        /// stage's end, itself included: the ready step with the most goes first.
        let priority: [Double]
    }

    /// The compute threads branch stages need: one per branch, two branches at a time.
    static let threads = 2
    /// A stage runs branch-wise when its heaviest path is at most this share of its work.
    /// A thread alone does ~0.58 of what two threads do on one convolution of these sizes
    /// (oneDNN's split loses the rest), so a stage whose heaviest path is more than that
    /// gains nothing.
    static let parallelShare = 0.56
    /// A floor (multiply-adds) against windows too small to repay starting the
    /// second thread; set by judgement, not tuned.
    static let minimumWork = 4e6

    let stages: [Stage]

    /// - Parameters:
    ///   - steps: the plan's steps, in the order they may run.
    ///   - cost: each step's work (multiply-adds, or an estimate for a pass over memory).
    init(steps: [InferencePlan.Step], cost: [Double]) {
        var readers: [Int: Int] = [:]
        for step in steps { for i in step.inputs { readers[i, default: 0] += 1 } }

        var stages: [Stage] = []
        // The window: consecutive steps since the last fork or join, as a
        // union-find of the branches among them (positions in `window`).
        var window: [Int] = []
        var position: [Int: Int] = [:]  // node → position of the step that makes it
        var root: [Int] = []
        func find(_ p: Int) -> Int {
            var p = p
            while root[p] != p {
                root[p] = root[root[p]]
                p = root[p]
            }
            return p
        }
        func branchCount() -> Int { Set(window.indices.map(find)).count }
        func flush() {
            defer {
                window = []
                position = [:]
                root = []
            }
            if let branches = Branches(window: window, steps: steps, cost: cost, branchCount: branchCount()) {
                stages.append(.branches(branches))
            } else {
                stages += window.map { .step($0) }
            }
        }

        for (i, step) in steps.enumerated() {
            let joined = Set(step.inputs.compactMap { position[$0] }.map(find))
            if joined.count >= 2 {
                // A join (the block's Concatenate or Add) ends the window and runs on its own.
                flush()
                stages.append(.step(i))
                continue
            }
            let p = window.count
            window.append(i)
            position[step.node] = p
            root.append(joined.first ?? p)
            // A fork in a single chain: its branches start a new window that
            // reads it from outside, so they are separate there.
            if readers[step.node, default: 0] >= 2, branchCount() == 1 { flush() }
        }
        flush()
        self.stages = stages
    }
}

extension BranchSchedule.Branches {
    /// The window as a stage, when it holds two or more branches whose work
    /// two threads can share; nil otherwise.
    fileprivate init?(window: [Int], steps: [InferencePlan.Step], cost: [Double], branchCount: Int) {
        guard branchCount >= 2 else { return nil }
        var position: [Int: Int] = [:]
        for (p, i) in window.enumerated() { position[steps[i].node] = p }
        var waitsFor = [Int](repeating: 0, count: window.count)
        var unblocks = [[Int]](repeating: [], count: window.count)
        for (p, i) in window.enumerated() {
            for q in Set(steps[i].inputs.compactMap({ position[$0] })) {
                waitsFor[p] += 1
                unblocks[q].append(p)
            }
        }
        var priority = [Double](repeating: 0, count: window.count)
        for p in window.indices.reversed() {
            priority[p] = cost[window[p]] + (unblocks[p].map { priority[$0] }.max() ?? 0)
        }
        let total = window.reduce(0) { $0 + cost[$1] }
        guard total >= BranchSchedule.minimumWork, priority.max()! <= BranchSchedule.parallelShare * total else { return nil }
        self.init(steps: window, waitsFor: waitsFor, unblocks: unblocks, priority: priority)
    }
}

extension Network {
    /// Each step's work for the branch schedule: multiply-adds for a
    /// convolution or dense layer, a few per element for a pass over memory.
    /// Dimensions that depend on the input size are taken at 224.
    func scheduleCost(of steps: [InferencePlan.Step]) -> [Double] {
        let shapes =
            (try? outputShapes(forInput: inputShape.map { $0 == -1 ? 224 : $0 }))
            ?? nodes.map { $0.outputShape.map { max($0, 1) } }
        return steps.map { step in
            let out = shapes[step.node]
            let layer: (any Layer)?
            switch step.operation {
            case .fused(let convolution, _, _): layer = convolution
            case .layer(let l): layer = l
            case .affineReLU: layer = nil
            }
            let positions = Double(out.dropLast().reduce(1, *))
            switch layer {
            case let c as Conv2D:
                return positions * Double(c.kernel.count)
            case let c as DepthwiseConv2D:
                return positions * Double(c.kernel.count)
            case let d as Dense:
                return Double(d.kernel.count)
            default:
                return 4 * Double(out.reduce(1, *))
            }
        }
    }
}
