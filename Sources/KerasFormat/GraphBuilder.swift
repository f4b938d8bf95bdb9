import Engine
import Foundation

/// Turns a `ModelSpec` plus its weights into engine nodes. A nested model (a
/// Functional or Sequential model used as a layer, like a convolutional base
/// inside a Sequential) is flattened: its layers become nodes of the one
/// network, addressed by their paths in the model tree (`outer/inner`) and, where
/// the name occurs once in the whole tree, by their own names too; the nested
/// model's name addresses its output.
final class GraphBuilder {
    let spec: ModelSpec
    let weights: WeightStore
    let registry: LayerRegistry
    /// 2 or 3: where Keras versions define a layer differently (`hard_sigmoid`).
    let kerasMajorVersion: Int

    struct Result {
        let network: Network
        let layers: [LayerSummary]
    }

    private var nodes: [Network.Node] = []
    private var layerIndex: [String: Int] = [:]
    private var preActivationIndex: [String: Int] = [:]
    /// By display name.
    private var summaries: [String: LayerSummary] = [:]
    /// By the layer's path in the model tree, for shared layers' repeated calls.
    private var cachedVariables: [String: StoredVariables] = [:]
    /// Layer names that occur more than once in the model tree.
    private var ambiguous: Set<String> = []

    init(spec: ModelSpec, weights: WeightStore, registry: LayerRegistry, kerasMajorVersion: Int) {
        self.spec = spec
        self.weights = weights
        self.registry = registry
        self.kerasMajorVersion = kerasMajorVersion
    }

    func build() throws -> Result {
        nodes = [Network.Node(id: 0, layer: nil, inputs: [], outputShape: spec.inputShape)]
        var counts: [String: Int] = [:]
        func count(_ s: ModelSpec, nested: Bool) {
            for l in s.layers where !(nested && l.className == "InputLayer") {
                counts[l.name, default: 0] += 1
                if let n = l.nested { count(n, nested: true) }
            }
        }
        count(spec, nested: false)
        ambiguous = Set(counts.filter { $0.value > 1 }.keys)

        let outputNode = try buildModel(spec, path: [], input: 0)
        guard outputNode > 0 else {
            throw KerasFormatError.unsupportedModel("the model's output is its input (no layers)")
        }
        let network: Network
        do {
            network = try Network(
                nodes: nodes, outputNode: outputNode, layerIndex: layerIndex,
                preActivationIndex: preActivationIndex)
        } catch {
            throw KerasFormatError.invalidFile("cannot assemble the network: \(error)")
        }
        return Result(network: network, layers: orderedSummaries(spec, path: []))
    }

    /// The name a layer's nodes, index entry and summary row get.
    private func displayName(_ name: String, path: [String]) -> String {
        path.isEmpty || !ambiguous.contains(name) ? name : (path + [name]).joined(separator: "/")
    }

    private func orderedSummaries(_ model: ModelSpec, path: [String]) -> [LayerSummary] {
        var out: [LayerSummary] = []
        for layer in model.layers {
            if !path.isEmpty && layer.className == "InputLayer" { continue }
            if let s = summaries[displayName(layer.name, path: path)] { out.append(s) }
            if let nested = layer.nested { out += orderedSummaries(nested, path: path + [layer.name]) }
        }
        return out
    }

    /// Builds `model`'s layers with the model's input at node `input`; returns the node of its output.
    private func buildModel(_ model: ModelSpec, path: [String], input: Int) throws -> Int {
        let byName = Dictionary(model.layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        if byName.count != model.layers.count {
            var seen = Set<String>()
            let dup = model.layers.first { !seen.insert($0.name).inserted }!.name
            throw KerasFormatError.invalidFile("two layers of model '\(model.name)' are named '\(dup)'")
        }
        /// Keras layer name → engine node id of each built call's output (by call index).
        var callOutputs: [String: [Int: Int]] = [:]

        if let inputName = model.inputLayer {
            callOutputs[inputName] = [0: input]
            let display = displayName(inputName, path: path)
            if layerIndex[display] == nil { layerIndex[display] = input }
            if path.isEmpty {
                summaries[display] = LayerSummary(
                    name: inputName, className: "InputLayer", outputShape: model.inputShape,
                    parameterCount: 0, nodeId: input)
            } else {
                let given = nodes[input].outputShape
                guard given.count == model.inputShape.count,
                    zip(given, model.inputShape).allSatisfy({ $0 == $1 || $1 == -1 || $0 == -1 })
                else {
                    throw KerasFormatError.invalidLayer(
                        layer: model.name, className: model.className,
                        detail: "nested model expects input \(model.inputShape), gets \(given)")
                }
            }
        }

        // Every call of every layer, resolved once its inputs exist. Config order
        // is topological for single-call layers; a shared layer's later calls may
        // need layers listed after it, hence the passes.
        struct Call {
            let layer: LayerSpec
            let index: Int
            let call: LayerCall
        }
        var pending: [Call] = []
        for layer in model.layers where layer.className != "InputLayer" {
            for (k, call) in layer.calls.enumerated() { pending.append(Call(layer: layer, index: k, call: call)) }
        }
        for layer in model.layers where layer.className == "InputLayer" && layer.name != model.inputLayer {
            throw KerasFormatError.unsupportedModel("a second InputLayer '\(layer.name)'; only one input is supported")
        }

        while !pending.isEmpty {
            var progressed = false
            var stillPending: [Call] = []
            for call in pending {
                // Resolve the inputs (an empty list: the model's input, as for the
                // first layer of a Sequential model without an InputLayer).
                var inputIds: [Int] = []
                var ready = true
                for ref in call.call.inputs {
                    guard byName[ref.layer] != nil else {
                        throw KerasFormatError.invalidFile(
                            "layer '\(call.layer.name)' takes its input from an unknown layer '\(ref.layer)'")
                    }
                    guard ref.tensor == 0 else {
                        throw KerasFormatError.unsupportedModel(
                            "layer '\(call.layer.name)' uses output \(ref.tensor) of '\(ref.layer)'; layers with several outputs are not supported"
                        )
                    }
                    guard let id = callOutputs[ref.layer]?[ref.node] else {
                        ready = false
                        break
                    }
                    inputIds.append(id)
                }
                if !ready {
                    stillPending.append(call)
                    continue
                }
                var operands = call.call.operands
                if inputIds.isEmpty {
                    inputIds = [input]
                    operands = [.tensor(0)] + operands
                }
                progressed = true
                let out = try buildCall(call.layer, index: call.index, inputs: inputIds, operands: operands, path: path)
                callOutputs[call.layer.name, default: [:]][call.index] = out
                if call.layer.nested != nil {
                    // Keras 2 numbers a nested model's calls from 1 (its node 0 links its
                    // own Input to its output and is not saved); Keras 3 from 0. A nested
                    // model is called once (checked), so both numbers mean this call.
                    callOutputs[call.layer.name, default: [:]][call.index + 1] = out
                }
            }
            pending = stillPending
            if !progressed {
                let names = pending.prefix(5).map { "'\($0.layer.name)'" }.joined(separator: ", ")
                throw KerasFormatError.invalidFile("the layer graph of '\(model.name)' has a cycle or a missing input at \(names)")
            }
        }

        guard byName[model.output.layer] != nil else {
            throw KerasFormatError.invalidFile("the output '\(model.output.layer)' of '\(model.name)' is not one of its layers")
        }
        guard model.output.tensor == 0, let out = callOutputs[model.output.layer]?[model.output.node] else {
            throw KerasFormatError.invalidFile("the output \(model.output) of '\(model.name)' is never computed")
        }
        return out
    }

    /// Builds one call of one layer (or nested model); returns its output node.
    private func buildCall(
        _ layer: LayerSpec, index: Int, inputs inputIds: [Int], operands: [CallOperand],
        path: [String]
    ) throws -> Int {
        let display = displayName(layer.name, path: path)
        let nodeName = index == 0 ? display : "\(display)@\(index)"
        let treePath = (path + [layer.name]).joined(separator: "/")

        if let nested = layer.nested {
            guard layer.calls.count == 1 else {
                throw KerasFormatError.unsupportedModel(
                    "nested model '\(layer.name)' is called \(layer.calls.count) times; only single calls of nested models are supported")
            }
            guard inputIds.count == 1 else {
                throw KerasFormatError.unsupportedModel(
                    "nested model '\(layer.name)' takes \(inputIds.count) inputs; only one is supported")
            }
            let first = nodes.count
            let out = try buildModel(nested, path: path + [layer.name], input: inputIds[0])
            layerIndex[display] = out
            layerIndex[treePath] = out
            let params = nodes[first...].reduce(0) { $0 + ($1.layer?.parameterCount ?? 0) }
            summaries[display] = LayerSummary(
                name: display, className: layer.className,
                outputShape: nodes[out].outputShape, parameterCount: params, nodeId: out,
                path: treePath, depth: path.count)
            return out
        }

        let registryKey = layer.isOperation ? LayerRegistry.operationKey(layer.className) : layer.className
        guard let builder = registry.builder(for: registryKey) else {
            if layer.isOperation {
                throw KerasFormatError.unsupportedLayer(layer: display, className: "operation \(layer.className)")
            }
            throw KerasFormatError.unsupportedLayer(layer: display, className: layer.className)
        }
        let key = (path + [layer.name]).joined(separator: "/")
        let context = LayerContext(
            layerName: display, nodeName: nodeName, className: layer.className, config: layer.config,
            inputShapes: inputIds.map { nodes[$0].outputShape }, operands: operands, kerasMajorVersion: kerasMajorVersion,
            loadVariables: { [self] in
                if let v = cachedVariables[key] { return v }
                let v = try weights.variables(forLayer: layer.name, className: layer.className, path: path)
                cachedVariables[key] = v
                return v
            })
        try context.checkDTypePolicy()
        let built = try builder(context)
        guard !built.ops.isEmpty else { throw context.invalid("builder produced no operation") }

        var previous = inputIds
        var ids: [Int] = []
        for op in built.ops {
            let shape: [Int]
            do {
                shape = try op.outputShape(for: previous.map { nodes[$0].outputShape })
            } catch let error as EngineError {
                throw context.invalid("\(error)")
            }
            let id = nodes.count
            nodes.append(Network.Node(id: id, layer: op, inputs: previous, outputShape: shape))
            ids.append(id)
            previous = [id]
        }
        let out = ids.last!
        layerIndex[nodeName] = out
        if index == 0 && treePath != display { layerIndex[treePath] = out }
        if let pre = built.preActivation {
            preActivationIndex[nodeName] = ids[pre]
            if index == 0 && treePath != display { preActivationIndex[treePath] = ids[pre] }
        }
        if index == 0 {
            summaries[display] = LayerSummary(
                name: display, className: layer.className, outputShape: nodes[out].outputShape,
                parameterCount: built.ops.reduce(0) { $0 + $1.parameterCount }, nodeId: out,
                path: treePath, depth: path.count)
        }
        return out
    }
}
