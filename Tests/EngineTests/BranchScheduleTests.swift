import Testing

@testable import Engine

/// Branch stages: the steps between a fork and its join run side by side, one
/// thread each, on two compute threads. They must give the numbers the
/// one-at-a-time run gives (the same primitives on one thread instead of two:
/// within 1e-5 relative), keep every node asked for, leave the caller's thread
/// count alone, and stop on the first error without hanging.
///
///     0 input [20,20,16]
///     1 conv 3x3 → 32   2 relu                       — the fork: four readers
///     a: 3 conv 1x1 → 32   4 relu
///     b: 5 conv 1x1 → 16   6 relu   7 conv 3x3 → 32   8 relu
///     c: 9 conv 1x1 → 16  10 relu  11 conv 3x3 → 24  12 relu — a fork inside a branch:
///        13 conv 1x3 → 16 (12)   14 conv 3x1 → 16 (12)   15 concat(13, 14)
///     d: 16 average pool 3x3 same   17 conv 1x1 → 16
///     18 concat(4, 8, 15, 17) — the join
///     19 global average pool   20 dense → 5
@Suite struct BranchScheduleTests {
    let network: Network

    init() throws {
        var rng = SplitMix64(seed: 41)
        func conv(_ name: String, _ kh: Int, _ kw: Int, _ cin: Int, _ cout: Int) -> Conv2D {
            Conv2D(
                name: name, kernel: rng.tensor([kh, kw, cin, cout], -0.3, 0.3), bias: rng.tensor([cout], -0.1, 0.1),
                strides: [1, 1], padding: .same, dilation: [1, 1])
        }
        func relu(_ name: String) -> Activation { Activation(name: name, function: .relu(maxValue: nil)) }
        let layers: [(any Layer, [Int])] = [
            (conv("stem", 3, 3, 16, 32), [0]), (relu("stem_relu"), [1]),
            (conv("a", 1, 1, 32, 32), [2]), (relu("a_relu"), [3]),
            (conv("b1", 1, 1, 32, 16), [2]), (relu("b1_relu"), [5]),
            (conv("b2", 3, 3, 16, 32), [6]), (relu("b2_relu"), [7]),
            (conv("c1", 1, 1, 32, 16), [2]), (relu("c1_relu"), [9]),
            (conv("c2", 3, 3, 16, 24), [10]), (relu("c2_relu"), [11]),
            (conv("c3_1x3", 1, 3, 24, 16), [12]), (conv("c3_3x1", 3, 1, 24, 16), [12]),
            (Concatenate(name: "c_concat"), [13, 14]),
            (AveragePooling2D(name: "d_pool", poolSize: [3, 3], strides: [1, 1], padding: .same), [2]),
            (conv("d", 1, 1, 32, 16), [16]),
            (Concatenate(name: "mixed"), [4, 8, 15, 17]),
            (GlobalAveragePooling2D(name: "gap", keepDims: false), [18]),
            (Dense(name: "fc", kernel: rng.tensor([112, 5]), bias: rng.tensor([5])), [19]),
        ]
        network = try Network(input: [20, 20, 16], layers)
    }

    func input(batch: Int = 2) -> Tensor {
        var rng = SplitMix64(seed: 5)
        return rng.tensor([batch, 20, 20, 16], -1, 1)
    }

    /// max|a − b| ≤ tolerance · (1 + max|b|).
    func expectClose(_ a: Tensor?, _ b: Tensor?, _ what: String, tolerance: Float) {
        guard let a, let b else {
            Issue.record("\(what): missing")
            return
        }
        #expect(a.shape == b.shape, "\(what): shape \(a.shape) vs \(b.shape)")
        guard a.shape == b.shape else { return }
        let diff = a.maxAbsDifference(b)
        #expect(diff <= tolerance * (1 + b.maxAbs), "\(what): max diff \(diff)")
    }

    struct NoBranchStage: Error {}

    /// The plan of the whole network and its branch stage, the block.
    func wholePlanAndItsBlock() throws -> (InferencePlan, BranchSchedule.Branches) {
        let plan = network.inferencePlan(last: 20, materialised: [20])
        guard case .branches(let b) = plan.schedule.stages[1] else { throw NoBranchStage() }
        return (plan, b)
    }

    /// The plan's stages, each as the nodes its steps make.
    func stages(_ plan: InferencePlan) -> [[Int]] {
        plan.schedule.stages.map { stage in
            switch stage {
            case .step(let i): return [plan.steps[i].node]
            case .branches(let b): return b.steps.map { plan.steps[$0].node }
            }
        }
    }

    @Test func theStepsBetweenAForkAndItsJoinAreOneStage() throws {
        let (plan, b) = try wholePlanAndItsBlock()
        #expect(stages(plan) == [[2], [4, 6, 8, 10, 12, 13, 14, 15, 16, 17], [18], [19], [20]])
        // Branch c's path (c1, c2, one of the 1×3/3×1 convolutions, the concat) is the heaviest: it starts first.
        let first = b.priority.indices.max { b.priority[$0] < b.priority[$1] }!
        #expect(plan.steps[b.steps[first]].node == 10)
        #expect(
            b.waitsFor
                == b.steps.map { i in Set(plan.steps[i].inputs.filter { [4, 6, 8, 10, 12, 13, 14, 15, 16, 17].contains($0) }).count })
        // A kept node inside the block splits its chain; the block stays one stage.
        let kept = network.inferencePlan(last: 20, materialised: [20, 7])
        #expect(stages(kept)[1] == [4, 6, 7, 8, 10, 12, 13, 14, 15, 16, 17])
    }

    @Test func chainsAndUnevenBranchesRunOneStepAtATime() throws {
        // Stopping inside the block leaves branch a and the join out: one chain after the fork.
        let chain = network.inferencePlan(last: 8, materialised: [8])
        #expect(stages(chain) == [[2], [6], [8]])
        // Two branches where one holds nearly all the work: nothing to share.
        var rng = SplitMix64(seed: 3)
        let layers: [(any Layer, [Int])] = [
            (
                Conv2D(
                    name: "heavy", kernel: rng.tensor([3, 3, 16, 64]), bias: nil, strides: [1, 1], padding: .same,
                    dilation: [1, 1]), [0]
            ),
            (
                Conv2D(
                    name: "light", kernel: rng.tensor([1, 1, 16, 4]), bias: nil, strides: [1, 1], padding: .same,
                    dilation: [1, 1]), [0]
            ),
            (Concatenate(name: "join"), [1, 2]),
        ]
        let uneven = try Network(input: [32, 32, 16], layers)
        #expect(stages(uneven.inferencePlan(last: 3, materialised: [3])) == [[1], [2], [3]])
    }

    @Test func branchWiseRunGivesTheOneAtATimeNumbers() throws {
        let x = input()
        let keep: Set<Int> = [4, 8, 12, 15, 17, 18]
        let previous = ComputeThreads.current
        defer { ComputeThreads.set(previous) }
        ComputeThreads.set(1)
        let oneAtATime = try network.forward(x, keep: keep)
        ComputeThreads.set(BranchSchedule.threads)
        let branchWise = try network.forward(x, keep: keep)
        #expect(ComputeThreads.current == BranchSchedule.threads, "the branch stage left the caller's thread count alone")
        let unfused = try network.forward(x, keepAll: true)
        #expect(branchWise.outputs.keys.sorted() == (keep.union([20])).sorted())
        for id in keep.union([20]).sorted() {
            expectClose(branchWise[id], oneAtATime[id], "node \(id)", tolerance: 1e-5)
            expectClose(branchWise[id], unfused[id], "node \(id) against the unfused run", tolerance: 1e-4)
        }
    }

    @Test func theStageRunnerFinishesEveryStepOfTheBlock() throws {
        // Called directly, so the side-by-side path runs whatever this machine's core count.
        let x = input(batch: 1)
        let (plan, b) = try wholePlanAndItsBlock()
        let unfused = try network.forward(x, keepAll: true)
        var state = PlanRun(plan: plan, input: x, kept: Set(plan.steps.map(\.node)))
        try state.run(plan.steps[0])
        state = try b.run(plan.steps, state)
        for i in b.steps {
            let node = plan.steps[i].node
            expectClose(state.out[node], unfused[node], "node \(node)", tolerance: 1e-4)
        }
        // The join reads what the stage left.
        try state.run(plan.steps[plan.steps.firstIndex { $0.node == 18 }!])
        expectClose(state.out[18], unfused[18], "the join", tolerance: 1e-4)
    }

    @Test func bothThreadsRunTheCallersNumerics() throws {
        // Winograd (fast) and direct sums round differently; a stage step that ran on
        // the team's second thread without the caller's task-local numerics would differ
        // from the one-at-a-time run, which uses the same one-thread primitives.
        let x = input(batch: 1)
        let (plan, b) = try wholePlanAndItsBlock()
        let previous = ComputeThreads.current
        defer { ComputeThreads.set(previous) }
        ComputeThreads.set(1)
        var reference = PlanRun(plan: plan, input: x, kept: Set(plan.steps.map(\.node)))
        try Numerics.scoped(.fast) {
            try reference.run(plan.steps[0])
            for i in b.steps { try reference.run(plan.steps[i]) }
        }
        var start = PlanRun(plan: plan, input: x, kept: Set(plan.steps.map(\.node)))
        try Numerics.scoped(.fast) { try start.run(plan.steps[0]) }
        for round in 0..<4 {
            let state = try Numerics.scoped(.fast) { try b.run(plan.steps, start) }
            for i in b.steps {
                let node = plan.steps[i].node
                let identical = state.out[node] != nil && state.out[node]?.scalars == reference.out[node]?.scalars
                #expect(identical, "round \(round), node \(node): not the one-at-a-time run's numbers")
            }
        }
    }

    @Test func aFailingStepStopsTheStage() throws {
        let (plan, b) = try wholePlanAndItsBlock()
        var state = PlanRun(plan: plan, input: input(batch: 1), kept: [])
        _ = state.take(plan.steps[0].inputs)
        // The fork's output with 8 channels where the branches' convolutions take 32.
        state.store(Tensor(zeros: [1, 20, 20, 8]), of: 2)
        #expect(throws: (any Error).self) { _ = try b.run(plan.steps, state) }
    }

    @Test func concurrentCallersEachGetTheirOwnResult() async throws {
        let inputs = (0..<6).map { k -> Tensor in
            var rng = SplitMix64(seed: UInt64(100 + k))
            return rng.tensor([1, 20, 20, 16], -1, 1)
        }
        let expected = try inputs.map { try network.forward($0, keepAll: true)[20]! }
        try await withThrowingTaskGroup(of: (Int, Tensor).self) { group in
            for k in inputs.indices {
                group.addTask { (k, try network.forward(inputs[k])[20]!) }
            }
            for try await (k, y) in group { expectClose(y, expected[k], "caller \(k)", tolerance: 1e-4) }
        }
    }
}
