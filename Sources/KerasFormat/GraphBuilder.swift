import Engine
import Foundation

/// Turns a `ModelSpec` plus its weights into engine nodes.
struct GraphBuilder {
    let spec: ModelSpec
    let weights: WeightStore
    let registry: LayerRegistry

    struct Result {
        let network: Network
        let layers: [LayerSummary]
    }

    func build() throws -> Result {
        var nodes: [Network.Node] = [Network.Node(id: 0, layer: nil, inputs: [], outputShape: spec.inputShape)]
        var layerIndex: [String: Int] = [:]
        var preActivationIndex: [String: Int] = [:]
        /// Keras layer name → engine node id of each built call's output (by call index).
        var callOutputs: [String: [Int: Int]] = [:]
        var summaries: [String: LayerSummary] = [:]
        var cachedVariables: [String: StoredVariables] = [:]

        let byName = Dictionary(spec.layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        if byName.count != spec.layers.count {
            var seen = Set<String>()
            let dup = spec.layers.first { !seen.insert($0.name).inserted }!.name
            throw KerasFormatError.invalidFile("two layers are named '\(dup)'")
        }

        if let input = spec.inputLayer {
            callOutputs[input] = [0: 0]
            layerIndex[input] = 0
            summaries[input] = LayerSummary(name: input, className: "InputLayer", outputShape: spec.inputShape,
                                            parameterCount: 0, nodeId: 0)
        }

        // Every call of every layer, resolved once its inputs exist. Config order
        // is topological for single-call layers; a shared layer's later calls may
        // need layers listed after it, hence the passes.
        struct Call { let layer: LayerSpec; let index: Int; let inputs: [TensorRef] }
        var pending: [Call] = []
        for layer in spec.layers where layer.className != "InputLayer" {
            for (k, inputs) in layer.calls.enumerated() { pending.append(Call(layer: layer, index: k, inputs: inputs)) }
        }
        for layer in spec.layers where layer.className == "InputLayer" && layer.name != spec.inputLayer {
            throw KerasFormatError.unsupportedModel("a second InputLayer '\(layer.name)'; only one input is supported")
        }

        while !pending.isEmpty {
            var progressed = false
            var stillPending: [Call] = []
            for call in pending {
                // Resolve the inputs (an empty list: the network input, as for the
                // first layer of a Sequential model without an InputLayer).
                var inputIds: [Int] = []
                var ready = true
                for ref in call.inputs {
                    guard byName[ref.layer] != nil else {
                        throw KerasFormatError.invalidFile("layer '\(call.layer.name)' takes its input from an unknown layer '\(ref.layer)'")
                    }
                    guard ref.tensor == 0 else {
                        throw KerasFormatError.unsupportedModel(
                            "layer '\(call.layer.name)' uses output \(ref.tensor) of '\(ref.layer)'; layers with several outputs are not supported")
                    }
                    guard let id = callOutputs[ref.layer]?[ref.node] else { ready = false; break }
                    inputIds.append(id)
                }
                if !ready { stillPending.append(call); continue }
                if inputIds.isEmpty { inputIds = [0] }
                progressed = true

                let layer = call.layer
                guard let builder = registry.builder(for: layer.className) else {
                    throw KerasFormatError.unsupportedLayer(layer: layer.name, className: layer.className)
                }
                let nodeName = call.index == 0 ? layer.name : "\(layer.name)@\(call.index)"
                let context = LayerContext(
                    layerName: layer.name, nodeName: nodeName, className: layer.className, config: layer.config,
                    inputShapes: inputIds.map { nodes[$0].outputShape },
                    loadVariables: {
                        if let v = cachedVariables[layer.name] { return v }
                        let v = try weights.variables(forLayer: layer.name, className: layer.className)
                        cachedVariables[layer.name] = v
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
                callOutputs[layer.name, default: [:]][call.index] = out
                if call.index == 0 {
                    layerIndex[layer.name] = out
                    if let pre = built.preActivation { preActivationIndex[layer.name] = ids[pre] }
                    summaries[layer.name] = LayerSummary(
                        name: layer.name, className: layer.className, outputShape: nodes[out].outputShape,
                        parameterCount: built.ops.reduce(0) { $0 + $1.parameterCount }, nodeId: out)
                } else {
                    layerIndex[nodeName] = out
                    if let pre = built.preActivation { preActivationIndex[nodeName] = ids[pre] }
                }
            }
            pending = stillPending
            if !progressed {
                let names = pending.prefix(5).map { "'\($0.layer.name)'" }.joined(separator: ", ")
                throw KerasFormatError.invalidFile("the layer graph has a cycle or a missing input at \(names)")
            }
        }

        guard byName[spec.output.layer] != nil else {
            throw KerasFormatError.invalidFile("the model output '\(spec.output.layer)' is not a layer of the model")
        }
        guard spec.output.tensor == 0, let outputNode = callOutputs[spec.output.layer]?[spec.output.node] else {
            throw KerasFormatError.invalidFile("the model output \(spec.output) was never computed")
        }
        guard outputNode > 0 else {
            throw KerasFormatError.unsupportedModel("the model's output is its input (no layers)")
        }
        let network: Network
        do {
            network = try Network(nodes: nodes, outputNode: outputNode, layerIndex: layerIndex,
                                  preActivationIndex: preActivationIndex)
        } catch {
            throw KerasFormatError.invalidFile("cannot assemble the network: \(error)")
        }
        let ordered = spec.layers.compactMap { summaries[$0.name] }
        return Result(network: network, layers: ordered)
    }
}
