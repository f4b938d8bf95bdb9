import Foundation

/// One output tensor of one call of a layer: Keras' (layer, node index, tensor index).
struct TensorRef: Equatable {
    let layer: String
    let node: Int
    let tensor: Int
}

/// One argument of a call, in the callee's argument order: an input tensor
/// (its index in the call's `inputs`) or a constant, as in `x + 3.0`, which
/// Keras 2 records as a `TFOpLambda` call with kwargs `{"y": 3.0}` and Keras 3
/// as an operation layer called with args `[x, 3.0]`.
enum CallOperand: Equatable {
    case tensor(Int)
    case constant(JSON)
}

/// One call of a layer (one Keras inbound node).
struct LayerCall: Equatable {
    /// The call's input tensors, in argument order.
    var inputs: [TensorRef]
    /// Every argument, tensors and constants, in argument order (keyword
    /// arguments after the positional ones, Keras' `name` left out).
    var operands: [CallOperand]

    init(inputs: [TensorRef], operands: [CallOperand]? = nil) {
        self.inputs = inputs
        self.operands = operands ?? inputs.indices.map { .tensor($0) }
    }
}

/// One layer entry of a model config.
struct LayerSpec {
    let name: String
    let className: String
    /// The layer's own `config` object.
    let config: JSON
    /// One entry per call of the layer (Keras' inbound nodes). Empty for an InputLayer.
    let calls: [LayerCall]
    /// The model's own config when this "layer" is a nested Sequential / Functional model.
    var nested: ModelSpec? = nil
    /// A Keras 3 operation recorded as a layer (module `keras.src.ops.*`: `x + y`
    /// on symbolic tensors becomes class `Add` of `keras.src.ops.numpy`, which is
    /// not the `Add` layer).
    var isOperation = false
}

/// A model config reduced to what the loader needs: layers in config order,
/// how they are wired, and the (single) input and output.
struct ModelSpec {
    enum Kind { case sequential, functional }
    let name: String
    let className: String
    let kind: Kind
    let layers: [LayerSpec]
    /// Per-sample input shape; -1 for a variable dimension.
    let inputShape: [Int]
    /// The InputLayer's name, when the config has one.
    let inputLayer: String?
    let output: TensorRef

    /// Parses `{"class_name": "Sequential" | "Functional" | "Model", "config": {...}}`.
    static func parse(_ root: JSON) throws -> ModelSpec {
        guard let className = root["class_name"]?.string else {
            throw KerasFormatError.invalidFile("the model config has no class_name")
        }
        guard let config = root["config"] else {
            throw KerasFormatError.invalidFile("the model config has no config object")
        }
        switch className {
        case "Sequential":
            return try parseSequential(config)
        case "Functional", "Model":
            return try parseFunctional(config, className: className)
        default:
            throw KerasFormatError.unsupportedModel(
                "model class \(className) (only Sequential and Functional models can be loaded; a subclassed model has no graph in its file)"
            )
        }
    }

    private static func layerEntries(_ list: JSON?) throws -> [JSON] {
        guard let layers = list?.array else { throw KerasFormatError.invalidFile("the model config has no layer list") }
        return layers
    }

    static let modelClasses: Set<String> = ["Sequential", "Functional", "Model"]

    /// Whether a layer entry is a Keras 3 operation (`keras.src.ops.numpy.Add`, ...).
    /// A `.keras` config names its module. Keras 3's legacy HDF5 config does not:
    /// there an operation shows by its config, which holds no `trainable` and no
    /// `dtype` (every layer's config has both), and by its call: an operation takes
    /// its operands as separate arguments (`x, 3.0`), a layer one argument (a
    /// tensor, or a list of tensors for a merge).
    static func isOperation(_ entry: JSON) -> Bool {
        if let module = entry["module"]?.string {
            return module.hasPrefix("keras.src.ops") || module.hasPrefix("keras.ops")
        }
        guard let className = entry["class_name"]?.string, className != "InputLayer", !modelClasses.contains(className),
            let config = entry["config"]?.object, config["trainable"] == nil, config["dtype"] == nil,
            let args = entry["inbound_nodes"]?.array?.first?["args"]?.array
        else { return false }
        return args.count >= 2
    }

    private static func basics(_ entry: JSON) throws -> (name: String, className: String, config: JSON, nested: ModelSpec?) {
        guard let className = entry["class_name"]?.string, let config = entry["config"],
            config.object != nil || (modelClasses.contains(className) && config.array != nil)
        else {
            throw KerasFormatError.invalidFile("a layer entry lacks class_name or config: \(entry.compact.prefix(200))")
        }
        guard let name = config["name"]?.string ?? entry["name"]?.string else {
            throw KerasFormatError.invalidFile("a \(className) layer has no name")
        }
        // A model used as a layer (e.g. a convolutional base inside a Sequential).
        let nested = modelClasses.contains(className) ? try parse(entry) : nil
        return (name, className, config, nested)
    }

    /// `[null, 224, 224, 3]` → `[224, 224, 3]` (null → -1).
    static func perSampleShape(_ batchShape: JSON, what: String) throws -> [Int] {
        guard let dims = batchShape.array, !dims.isEmpty else {
            throw KerasFormatError.invalidFile("\(what) is not a shape: \(batchShape.compact)")
        }
        return try dims.dropFirst().map { d in
            if d.isNull { return -1 }
            guard let v = d.int, v > 0 else { throw KerasFormatError.invalidFile("\(what) has a bad dimension: \(batchShape.compact)") }
            return v
        }
    }

    private static func inputShape(ofInputLayer name: String, _ config: JSON) throws -> [Int] {
        if let s = config["batch_shape"], !s.isNull { return try perSampleShape(s, what: "InputLayer '\(name)' batch_shape") }
        if let s = config["batch_input_shape"], !s.isNull {
            return try perSampleShape(s, what: "InputLayer '\(name)' batch_input_shape")
        }
        if let s = config["input_shape"], let dims = s.array {
            return try perSampleShape(.array([.null] + dims), what: "InputLayer '\(name)' input_shape")
        }
        throw KerasFormatError.invalidFile("InputLayer '\(name)' has no batch_shape / batch_input_shape")
    }

    private static func parseSequential(_ config: JSON) throws -> ModelSpec {
        // Very old Keras wrote a Sequential config as a bare layer list.
        let entries = try layerEntries(config.array != nil ? config : config["layers"])
        let name = config["name"]?.string ?? "sequential"
        var layers: [LayerSpec] = []
        var inputShape: [Int]?
        var inputLayer: String?
        var previous: TensorRef?
        for (i, entry) in entries.enumerated() {
            let (lname, cls, lconfig, nested) = try basics(entry)
            if cls == "InputLayer" {
                guard i == 0 else {
                    throw KerasFormatError.invalidFile("Sequential model '\(name)': InputLayer '\(lname)' is not the first layer")
                }
                inputShape = try Self.inputShape(ofInputLayer: lname, lconfig)
                inputLayer = lname
                layers.append(LayerSpec(name: lname, className: cls, config: lconfig, calls: []))
                previous = TensorRef(layer: lname, node: 0, tensor: 0)
                continue
            }
            if inputShape == nil {
                // No InputLayer: the first layer carries the input shape (Keras 2),
                // or the model records the shape it was built with.
                for key in ["batch_shape", "batch_input_shape"] {
                    if let s = lconfig[key], !s.isNull { inputShape = try perSampleShape(s, what: "layer '\(lname)' \(key)") }
                }
                if inputShape == nil, let s = config["build_input_shape"], !s.isNull {
                    inputShape = try perSampleShape(s, what: "Sequential build_input_shape")
                }
                if inputShape == nil, let nested { inputShape = nested.inputShape }
                guard inputShape != nil else {
                    throw KerasFormatError.invalidFile(
                        "Sequential model '\(name)' records no input shape (it was never built); build it on an input before saving")
                }
            }
            let inputs = previous.map { [$0] } ?? []
            layers.append(
                LayerSpec(
                    name: lname, className: cls, config: lconfig, calls: [LayerCall(inputs: inputs)],
                    nested: nested, isOperation: isOperation(entry)))
            previous = TensorRef(layer: lname, node: 0, tensor: 0)
        }
        guard let shape = inputShape, let last = previous, last.layer != inputLayer else {
            throw KerasFormatError.invalidFile("Sequential model '\(name)' has no layers")
        }
        return ModelSpec(
            name: name, className: "Sequential", kind: .sequential, layers: layers,
            inputShape: shape, inputLayer: inputLayer, output: last)
    }

    private static func parseFunctional(_ config: JSON, className: String) throws -> ModelSpec {
        let entries = try layerEntries(config["layers"])
        let name = config["name"]?.string ?? "model"
        var layers: [LayerSpec] = []
        for entry in entries {
            let (lname, cls, lconfig, nested) = try basics(entry)
            // A layer that is never called (or an InputLayer) may have no inbound nodes.
            let nodes = entry["inbound_nodes"]?.array ?? []
            let calls = try nodes.map { try parseInboundNode($0, layer: lname) }
            layers.append(
                LayerSpec(
                    name: lname, className: cls, config: lconfig, calls: calls, nested: nested,
                    isOperation: isOperation(entry)))
        }
        let inputs = try tensorRefList(config["input_layers"], what: "input_layers")
        let outputs = try tensorRefList(config["output_layers"], what: "output_layers")
        guard inputs.count == 1 else {
            throw KerasFormatError.unsupportedModel(
                "model '\(name)' has \(inputs.count) inputs (\(inputs.map(\.layer).joined(separator: ", "))); only models with one input are supported"
            )
        }
        guard outputs.count == 1 else {
            throw KerasFormatError.unsupportedModel(
                "model '\(name)' has \(outputs.count) outputs (\(outputs.map(\.layer).joined(separator: ", "))); only models with one output are supported"
            )
        }
        let input = inputs[0]
        guard let inputSpec = layers.first(where: { $0.name == input.layer }), inputSpec.className == "InputLayer" else {
            throw KerasFormatError.invalidFile("model input '\(input.layer)' is not an InputLayer of the model")
        }
        let others = layers.filter { $0.className == "InputLayer" && $0.name != input.layer }
        if !others.isEmpty {
            throw KerasFormatError.unsupportedModel(
                "model '\(name)' has several InputLayers (\(([input.layer] + others.map(\.name)).joined(separator: ", "))); only models with one input are supported"
            )
        }
        return ModelSpec(
            name: name, className: className, kind: .functional, layers: layers,
            inputShape: try inputShape(ofInputLayer: inputSpec.name, inputSpec.config),
            inputLayer: inputSpec.name, output: outputs[0])
    }

    /// `[["a", 0, 0], ...]`, or a single `["a", 0, 0]` (Keras 3 with one input/output).
    private static func tensorRefList(_ value: JSON?, what: String) throws -> [TensorRef] {
        guard let list = value?.array else { throw KerasFormatError.invalidFile("the model config has no \(what)") }
        if list.first?.string != nil { return [try tensorRef(value!, what: what)] }
        return try list.map { try tensorRef($0, what: what) }
    }

    private static func tensorRef(_ value: JSON, what: String) throws -> TensorRef {
        guard let a = value.array, a.count >= 3, let l = a[0].string, let n = a[1].int, let t = a[2].int else {
            throw KerasFormatError.invalidFile("\(what): expected [layer, node, tensor], got \(value.compact.prefix(200))")
        }
        return TensorRef(layer: l, node: n, tensor: t)
    }

    /// One inbound node: Keras 2 `[[layer, node, tensor, kwargs], ...]` (a
    /// `TFOpLambda` writes its single call as `[layer, node, tensor, kwargs]`,
    /// the kwargs holding its other arguments: constants or `[layer, node, tensor]`)
    /// or Keras 3 `{"args": [...], "kwargs": {...}}` with `__keras_tensor__`
    /// objects (possibly inside lists, as for Add) and constants.
    private static func parseInboundNode(_ node: JSON, layer: String) throws -> LayerCall {
        if let args = node["args"] {
            var refs: [TensorRef] = []
            var operands: [CallOperand] = []
            for arg in args.array ?? [args] {
                let before = refs.count
                collectKerasTensors(arg, into: &refs)
                if refs.count == before {
                    operands.append(.constant(arg))
                } else {
                    operands += (before..<refs.count).map { .tensor($0) }
                }
            }
            var kwargRefs: [TensorRef] = []
            if let kwargs = node["kwargs"] { collectKerasTensors(kwargs, into: &kwargRefs) }
            if !kwargRefs.isEmpty {
                throw KerasFormatError.unsupportedModel(
                    "layer '\(layer)' is called with tensors as keyword arguments (\(kwargRefs.map(\.layer).joined(separator: ", ")))")
            }
            for r in refs where r.node < 0 || r.tensor < 0 {
                throw KerasFormatError.invalidFile("layer '\(layer)': bad keras_history")
            }
            return LayerCall(inputs: refs, operands: operands)
        }
        guard let list = node.array else {
            throw KerasFormatError.invalidFile("layer '\(layer)': unrecognised inbound node \(node.compact.prefix(200))")
        }
        if list.first?.string != nil {
            // A TFOpLambda call: the first argument, then the keyword arguments. A
            // constant first argument (`2.0 * x`) is written ["_CONSTANT_VALUE", -1, 2.0, {...}].
            var inputs: [TensorRef] = []
            var operands: [CallOperand] = []
            if list.count >= 3, list[0].string == "_CONSTANT_VALUE", list[1].int == -1 {
                operands.append(.constant(list[2]))
            } else {
                inputs.append(try tensorRef(node, what: "inbound node of layer '\(layer)'"))
                operands.append(.tensor(0))
            }
            if list.count >= 4, let kwargs = list[3].object {
                for key in kwargs.keys.sorted() where key != "name" {
                    let value = kwargs[key]!
                    if value.isNull { continue }
                    if let ref = try? tensorRef(value, what: ""), value.array?.count == 3 {
                        operands.append(.tensor(inputs.count))
                        inputs.append(ref)
                    } else {
                        operands.append(.constant(value))
                    }
                }
            }
            return LayerCall(inputs: inputs, operands: operands)
        }
        return LayerCall(inputs: try list.map { try tensorRef($0, what: "inbound node of layer '\(layer)'") })
    }

    private static func collectKerasTensors(_ value: JSON, into refs: inout [TensorRef]) {
        switch value {
        case .array(let a):
            for v in a { collectKerasTensors(v, into: &refs) }
        case .object(let o):
            if o["class_name"]?.string == "__keras_tensor__",
                let h = o["config"]?["keras_history"]?.array, h.count >= 3,
                let l = h[0].string, let n = h[1].int, let t = h[2].int
            {
                refs.append(TensorRef(layer: l, node: n, tensor: t))
            } else {
                for key in o.keys.sorted() { collectKerasTensors(o[key]!, into: &refs) }
            }
        default:
            break
        }
    }
}
