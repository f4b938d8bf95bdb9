extension Network {
    /// The nodes a pass resumed at `start` (see `forward(resumingAt:with:context:stopAfter:)`)
    /// reads from its context: the inputs of the nodes between `start` and `last` that do
    /// not themselves depend on `start` (a skip connection's other branch). Keep them in
    /// the forward pass that makes the context.
    public func resumeInputs(from start: Int, stopAfter last: Int) -> Set<Int> {
        let down = descendants(of: start)
        let needed = ancestors(of: last).intersection(down)
        var side: Set<Int> = []
        for id in needed where id != start {
            for i in nodes[id].inputs where !down.contains(i) { side.insert(i) }
        }
        return side
    }

    /// Runs only the nodes after `start` up to `last`, for a batch of values of `start`'s
    /// output (`value`, per-sample shape as `start`'s output in `context`) — what
    /// perturbing a layer costs without recomputing what lies below it. Nodes that do not
    /// depend on `start` are read from `context`, a trace of one image (batch 1, repeated
    /// for each sample of `value`) that holds `resumeInputs(from:stopAfter:)`.
    public func forward(resumingAt start: Int, with value: Tensor, context: Trace, stopAfter last: Int) throws -> Trace {
        guard start > 0, start < last, last < nodes.count else {
            throw EngineError.invalidRequest("cannot resume at node \(start) and stop after node \(last)")
        }
        let down = descendants(of: start)
        guard down.contains(last) else {
            throw EngineError.invalidRequest("node '\(nodes[last].name)' does not depend on '\(nodes[start].name)'")
        }
        let needed = ancestors(of: last).intersection(down)
        var consumers = [Int](repeating: 0, count: nodes.count)
        for id in needed where id != start { for i in nodes[id].inputs { consumers[i] += 1 } }
        var live: [Int: Tensor] = [start: value]
        // Context values, repeated to the batch's size once each.
        func sideInput(_ i: Int) throws -> Tensor {
            if let t = live[i] { return t }
            guard let t = context[i], t.batch == 1 else {
                throw EngineError.invalidRequest("the context lacks the output of '\(nodes[i].name)' for one image")
            }
            let repeated = value.batch == 1 ? t : Tensor.concatenateBatches(Array(repeating: t, count: value.batch))
            live[i] = repeated
            return repeated
        }
        var kept: [Int: Tensor] = [:]
        for id in (start + 1)...last where needed.contains(id) {
            let node = nodes[id]
            let args = try node.inputs.map { try sideInput($0) }
            let out = try node.layer!.forward(args)
            for i in node.inputs {
                consumers[i] -= 1
                if consumers[i] == 0 { live[i] = nil }
            }
            if consumers[id] > 0 { live[id] = out }
            if id == last { kept[id] = out }
        }
        return Trace(outputs: kept)
    }
}
