/// A network: a DAG of layer nodes in topological order, one input, one output.
///
/// Node 0 is the input placeholder. Every other node applies its layer to the
/// outputs of earlier nodes. A Keras layer that expands to several nodes (a
/// Conv2D with a fused activation becomes convolution + activation) is addressed
/// by its Keras name, which maps to the node whose output Keras calls that
/// layer's output (see `node(named:)`).
public final class Network: Sendable {
    public struct Node: Sendable {
        public let id: Int
        /// nil only for the input node.
        public let layer: (any Layer)?
        /// Ids of the nodes whose outputs feed this one, in order.
        public let inputs: [Int]
        /// Per-sample output shape; -1 marks a dimension that depends on the
        /// input size (a model built for variable image sizes).
        public let outputShape: [Int]
        public var name: String { layer?.name ?? "input" }

        public init(id: Int, layer: (any Layer)?, inputs: [Int], outputShape: [Int]) {
            self.id = id
            self.layer = layer
            self.inputs = inputs
            self.outputShape = outputShape
        }
    }

    public let nodes: [Node]
    public let outputNode: Int
    /// Keras layer name → node id of that layer's (post-activation) output.
    public let layerIndex: [String: Int]
    /// Keras layer name → node id of the output before the layer's own final
    /// activation, where that activation was split off (softmax heads: the logits).
    public let preActivationIndex: [String: Int]
    /// Forward passes run on plans made from `nodes` (see `InferencePlan`).
    let plans = InferencePlans()

    public var inputShape: [Int] { nodes[0].outputShape }
    public var outputShape: [Int] { nodes[outputNode].outputShape }

    /// Builds a network from nodes; checks topological order and shapes.
    public init(
        nodes: [Node], outputNode: Int, layerIndex: [String: Int] = [:],
        preActivationIndex: [String: Int] = [:]
    ) throws {
        for (i, node) in nodes.enumerated() {
            guard node.id == i else { throw EngineError.invalidRequest("node \(i) has id \(node.id)") }
            if i == 0 {
                guard node.layer == nil, node.inputs.isEmpty else {
                    throw EngineError.invalidRequest("node 0 must be the input placeholder")
                }
            } else {
                guard node.layer != nil, !node.inputs.isEmpty, node.inputs.allSatisfy({ $0 >= 0 && $0 < i }) else {
                    throw EngineError.invalidRequest("node \(i) '\(node.name)' is not in topological order")
                }
            }
        }
        guard outputNode > 0, outputNode < nodes.count else {
            throw EngineError.invalidRequest("output node \(outputNode) out of range")
        }
        self.nodes = nodes
        self.outputNode = outputNode
        var index = layerIndex
        for node in nodes where index[node.name] == nil { index[node.name] = node.id }
        self.layerIndex = index
        self.preActivationIndex = preActivationIndex
    }

    /// The node id for a layer name (`input` names the input).
    public func node(named name: String) throws -> Int {
        if let id = layerIndex[name] { return id }
        throw EngineError.unknownNode(name)
    }

    // MARK: - Forward

    /// The outputs of one forward pass, by node id. Only kept nodes are present.
    public struct Trace: Sendable {
        public var outputs: [Int: Tensor]
        public init(outputs: [Int: Tensor]) { self.outputs = outputs }
        public subscript(node: Int) -> Tensor? { outputs[node] }
    }

    /// Runs the network on `input` (batch first, per-sample shape `inputShape`).
    ///
    /// Runs on an `InferencePlan`: convolution → BatchNormalization →
    /// activation chains whose inner outputs are not asked for run as one
    /// fused convolution. Every node asked for below is computed and kept.
    ///
    /// - Parameters:
    ///   - stopAfter: the last node to compute (default: the output node). Nodes
    ///     after it — and nodes it does not depend on — are skipped.
    ///   - keep: node ids whose outputs the trace must hold (the stop node is always kept).
    ///   - keepAll: keep every computed output, each from its own layer, nothing
    ///     fused (what `backward` to the input needs).
    ///   - backwardTo: keep what `backward(…, to: backwardTo, …)` reads: every
    ///     computed node from `backwardTo` on and the nodes those read, except a
    ///     BatchNormalization/affine map read only by a ReLU (or ReLU6): the pair
    ///     runs as one pass and backward crosses it from the ReLU's output. Below
    ///     `backwardTo`, nothing is kept and chains are fused.
    public func forward(
        _ input: Tensor, stopAfter: Int? = nil, keep: Set<Int> = [],
        keepAll: Bool = false, backwardTo: Int? = nil
    ) throws -> Trace {
        let last = stopAfter ?? outputNode
        guard last >= 0, last < nodes.count else { throw EngineError.invalidRequest("node \(last) out of range") }
        let given = Array(input.shape.dropFirst())
        guard given.count == inputShape.count,
            zip(given, inputShape).allSatisfy({ $1 == -1 || $0 == $1 })
        else {
            throw EngineError.shapeMismatch(
                layer: "input",
                detail: "expected per-sample shape \(inputShape), got \(Array(input.shape.dropFirst()))")
        }
        if last == 0 { return Trace(outputs: [0: input]) }
        let plan: InferencePlan
        let kept: Set<Int>
        if keepAll {
            plan = unfusedPlan(last: last)
            kept = Set(0...last)
        } else {
            let must = nodesKept(last: last, keep: keep, backwardTo: backwardTo)
            plan = inferencePlan(last: last, materialised: must)
            kept = must
        }
        return Trace(outputs: try run(plan, input, keeping: kept))
    }

    /// The nodes a forward pass to `last` keeps (without `keepAll`): `keep`, `last`, and
    /// with `backwardTo` what that backward pass reads. Nodes `last` does not depend on
    /// are in the set but never computed.
    func nodesKept(last: Int, keep: Set<Int>, backwardTo: Int?) -> Set<Int> {
        var must = keep.filter { $0 >= 0 && $0 <= last }
        must.insert(last)
        if let to = backwardTo, to >= 0, to < last {
            for id in to...last {
                must.insert(id)
                if id > to { must.formUnion(nodes[id].inputs) }
            }
            // The inner nodes of the chains backward crosses are never read (`Crossing`).
            must.subtract(crossings(upTo: last).keys.filter { $0 > to && !keep.contains($0) })
        }
        return must
    }

    /// Runs the steps of `plan`; returns the outputs of the nodes in `kept`
    /// that it computed (and the input, when kept).
    private func run(_ plan: InferencePlan, _ input: Tensor, keeping kept: Set<Int>) throws -> [Int: Tensor] {
        var state = PlanRun(plan: plan, input: input, kept: kept)
        let branchWise = ComputeThreads.current == BranchSchedule.threads
        for stage in plan.schedule.stages {
            try ComputeBoundary.cross()
            switch stage {
            case .step(let i):
                try state.run(plan.steps[i])
            case .branches(let branches) where branchWise:
                state = try branches.run(plan.steps, state)
            case .branches(let branches):
                for i in branches.steps { try state.run(plan.steps[i]) }
            }
        }
        return state.out
    }

    /// Convenience: the network's output for `input`.
    public func predict(_ input: Tensor) throws -> Tensor {
        try forward(input).outputs[outputNode]!
    }

    /// Per-sample output shape of every node for a concrete input shape
    /// (resolves the -1 dimensions of a variable-size model).
    public func outputShapes(forInput shape: [Int]) throws -> [[Int]] {
        var shapes: [[Int]] = [shape]
        for node in nodes.dropFirst() {
            shapes.append(try node.layer!.outputShape(for: node.inputs.map { shapes[$0] }))
        }
        return shapes
    }

    // MARK: - Backward

    /// Back-propagates `seed` (the gradient of a scalar loss w.r.t. node `from`'s
    /// output) down to node `to` (0 = the input), using a trace made with
    /// `keepAll: true` (or one that holds every node between the two).
    /// Returns the gradient w.r.t. node `to`'s output.
    ///
    /// With `guidedReLU`, every ReLU also drops negative incoming gradients —
    /// Guided Backpropagation (Springenberg et al. 2015): only evidence that
    /// increases the score flows back. It changes nothing else.
    public func backward(from: Int, seed: Tensor, to: Int, trace: Trace, guidedReLU: Bool = false) throws -> Tensor {
        guard from > to else { throw EngineError.invalidRequest("cannot back-propagate from node \(from) to \(to): \(to) is not earlier") }
        guard let fromOut = trace[from], fromOut.shape == seed.shape else {
            throw EngineError.invalidRequest("seed shape \(seed.shape) does not match node '\(nodes[from].name)' output")
        }
        // Only nodes on a path from `to` to `from` carry gradient.
        let up = ancestors(of: from)
        let down = descendants(of: to)
        var grads: [Int: Tensor] = [from: seed]
        func accumulate(_ add: Tensor, into i: Int) {
            if var acc = grads[i] {
                acc.scalars.withUnsafeMutableBufferPointer { a in
                    add.scalars.withUnsafeBufferPointer { b in
                        for j in 0..<a.count { a[j] += b[j] }
                    }
                }
                grads[i] = acc
            } else {
                grads[i] = add
            }
        }
        let crossed = crossings(upTo: from)
        var id = from
        while id > to {
            defer { id -= 1 }
            guard up.contains(id), down.contains(id), let g = grads.removeValue(forKey: id) else { continue }
            try ComputeBoundary.cross()
            let node = nodes[id]
            // The last node of a crossed chain whose inner output the trace does not hold:
            // one backward pass through the chain from this node's output.
            if node.inputs.count == 1, let inner = node.inputs.first, trace[inner] == nil, let crossing = crossed[inner],
                let out = trace[id], let below = nodes[inner].inputs.first, down.contains(below),
                let d = try backward(crossing: crossing, inner: inner, output: out, gradient: g, below: trace[below], guided: guidedReLU)
            {
                accumulate(d, into: below)
                continue
            }
            let ins = try node.inputs.map { i -> Tensor in
                guard let t = trace[i] else {
                    throw EngineError.invalidRequest("trace lacks the output of '\(nodes[i].name)'; run forward with keepAll")
                }
                return t
            }
            // A convolution crossed with the affine map and ReLU after it keeps no output;
            // its backward reads only its input (the gradient stands in for the output's shape).
            let standIn: Tensor?
            if case .convolutionBeforeCrossedAffine = crossed[id] { standIn = g } else { standIn = nil }
            guard let out = trace[id] ?? standIn else {
                throw EngineError.invalidRequest("trace lacks the output of '\(node.name)'")
            }
            var inGrads = try node.layer!.backward(ins, output: out, outputGradient: g)
            if guidedReLU, let act = node.layer as? Activation, case .relu = act.function {
                for k in inGrads.indices {
                    inGrads[k].scalars.withUnsafeMutableBufferPointer { p in
                        for j in 0..<p.count where p[j] < 0 { p[j] = 0 }
                    }
                }
            }
            for (k, i) in node.inputs.enumerated() where down.contains(i) { accumulate(inGrads[k], into: i) }
        }
        guard let result = grads[to] else {
            throw EngineError.invalidRequest("node '\(nodes[to].name)' does not feed '\(nodes[from].name)'")
        }
        return result
    }

    // MARK: - Graph queries

    /// `id` and every node it depends on.
    public func ancestors(of id: Int) -> Set<Int> {
        var seen: Set<Int> = [id]
        var stack = [id]
        while let n = stack.popLast() {
            for i in nodes[n].inputs where !seen.contains(i) {
                seen.insert(i)
                stack.append(i)
            }
        }
        return seen
    }

    /// `id` and every node that depends on it.
    public func descendants(of id: Int) -> Set<Int> {
        var seen: Set<Int> = [id]
        for node in nodes where node.id > id {
            if node.inputs.contains(where: { seen.contains($0) }) { seen.insert(node.id) }
        }
        return seen
    }
}
