import Engine
import Foundation

/// What a layer builder returns: the engine layers one Keras layer (call)
/// becomes. The first consumes the call's inputs, each further one the output
/// of the one before; the last one's output is the Keras layer's output.
struct BuiltLayer {
    var ops: [any Layer]
    /// Index in `ops` of the output before the layer's own final activation,
    /// when that activation was split off into its own node.
    var preActivation: Int?

    init(_ ops: [any Layer], preActivation: Int? = nil) {
        self.ops = ops
        self.preActivation = preActivation
    }
}

/// One variable a layer class stores, in the class's own order.
struct VariableSpec {
    /// The name in legacy HDF5 files (`kernel`, `bias`, `gamma`, ...).
    let name: String
    /// Other names the same variable has had (Keras 2's `depthwise_kernel`).
    var aliases: [String] = []
    /// Whether this layer instance has the variable (`use_bias`, `scale`, ...).
    var present: Bool = true
    /// A layer's only variable, created without a name (Keras 3 calls it
    /// `variable_N`), matches whatever name the file gives it.
    var anyNameWhenAlone: Bool = false
}

/// Everything a builder may look at for one call of one Keras layer, with
/// typed config accessors whose errors name the layer.
struct LayerContext {
    /// The Keras layer name.
    let layerName: String
    /// The base name for this call's engine nodes (the layer name; `name@k` for call k > 0 of a shared layer).
    let nodeName: String
    let className: String
    let config: JSON
    /// Per-sample shapes of the call's inputs (-1: variable).
    let inputShapes: [[Int]]
    /// The call's arguments in order: input tensors (indices into `inputShapes`) and constants.
    var operands: [CallOperand] = []
    /// The Keras that wrote the file (2 or 3), where the versions define a layer differently.
    var kerasMajorVersion: Int = 3
    let loadVariables: () throws -> StoredVariables

    // MARK: errors

    func unsupported(_ option: String) -> KerasFormatError {
        .unsupportedOption(layer: layerName, className: className, option: option)
    }

    func invalid(_ detail: String) -> KerasFormatError {
        .invalidLayer(layer: layerName, className: className, detail: detail)
    }

    /// A class refused by design, with the reason and what to do instead.
    func refused(_ reason: String) -> KerasFormatError {
        .refusedLayer(layer: layerName, className: className, reason: reason)
    }

    // MARK: config values

    func value(_ key: String) -> JSON? {
        guard let v = config[key], !v.isNull else { return nil }
        return v
    }

    func int(_ key: String, default def: Int? = nil) throws -> Int {
        guard let v = value(key) else {
            if let def { return def }
            throw invalid("config has no '\(key)'")
        }
        if let i = v.int { return i }
        if let a = v.array, a.count == 1, let i = a[0].int { return i }
        throw invalid("'\(key)' is not an integer: \(v.compact)")
    }

    func float(_ key: String, default def: Float? = nil) throws -> Float {
        guard let v = value(key) else {
            if let def { return def }
            throw invalid("config has no '\(key)'")
        }
        guard let d = v.double else { throw invalid("'\(key)' is not a number: \(v.compact)") }
        return Float(d)
    }

    func optionalFloat(_ key: String) throws -> Float? {
        guard let v = value(key) else { return nil }
        guard let d = v.double else { throw invalid("'\(key)' is not a number: \(v.compact)") }
        return Float(d)
    }

    func bool(_ key: String, default def: Bool) throws -> Bool {
        guard let v = value(key) else { return def }
        guard let b = v.bool else { throw invalid("'\(key)' is not a boolean: \(v.compact)") }
        return b
    }

    func string(_ key: String, default def: String? = nil) throws -> String {
        guard let v = value(key) else {
            if let def { return def }
            throw invalid("config has no '\(key)'")
        }
        guard let s = v.string else { throw invalid("'\(key)' is not a string: \(v.compact)") }
        return s
    }

    /// An int or a pair of ints (`kernel_size`, `strides`, ...), as [a, b].
    func pair(_ key: String, default def: [Int]? = nil) throws -> [Int] {
        guard let v = value(key) else {
            if let def { return def }
            throw invalid("config has no '\(key)'")
        }
        if let i = v.int, i > 0 { return [i, i] }
        if let a = v.array, a.count == 2, let x = a[0].int, let y = a[1].int, x > 0, y > 0 { return [x, y] }
        if let a = v.array, a.count == 1, let x = a[0].int, x > 0 { return [x, x] }
        throw invalid("'\(key)' is not a positive int or pair of ints: \(v.compact)")
    }

    func padding(_ key: String = "padding") throws -> Padding {
        let p = try string(key, default: "valid").lowercased()
        guard let padding = Padding(rawValue: p) else { throw unsupported("\(key)='\(p)'") }
        return padding
    }

    /// Refuses `data_format="channels_first"` (the engine is NHWC).
    func requireChannelsLast() throws {
        if let f = value("data_format")?.string, f != "channels_last" {
            throw unsupported("data_format='\(f)'")
        }
    }

    /// Refuses an option unless its value is one of `allowed` (absent/null counts as its default).
    func require(_ key: String, in allowed: [JSON], absentOK: Bool = true) throws {
        guard let v = value(key) else {
            if absentOK { return }
            throw invalid("config has no '\(key)'")
        }
        if !allowed.contains(v) { throw unsupported("\(key)=\(v.compact)") }
    }

    /// Refuses quantized dtype policies; float policies all compute in Float32 here.
    func checkDTypePolicy() throws {
        guard let d = value("dtype") else { return }
        var policyName: String?
        if let s = d.string {
            policyName = s
        } else if let cls = d["class_name"]?.string {
            if cls.contains("Quantized") { throw unsupported("dtype policy \(cls) (quantized weights)") }
            policyName = d["config"]?["name"]?.string
        }
        if let n = policyName {
            let allowed = ["float32", "float16", "bfloat16", "float64", "mixed_float16", "mixed_bfloat16"]
            if !allowed.contains(n) { throw unsupported("dtype='\(n)'") }
        }
    }

    /// The single input's per-sample shape.
    func singleInputShape() throws -> [Int] {
        guard inputShapes.count == 1 else { throw invalid("expects one input, got \(inputShapes.count)") }
        return inputShapes[0]
    }

    // MARK: activations

    /// Keras' activation given by name (or a serialized activation function).
    func activation(_ key: String = "activation") throws -> ActivationFunction {
        guard let v = value(key) else { return .linear }
        var name = v.string
        if name == nil, let cfg = v["config"] {
            // Keras 3 may serialize a built-in as {"class_name": "function", "config": "relu", ...}.
            name = cfg.string ?? cfg["name"]?.string
        }
        guard let n = name else { throw unsupported("\(key)=\(v.compact)") }
        return try Self.activationFunction(named: n, kerasMajorVersion: kerasMajorVersion)
            ?? { throw unsupported("\(key)='\(n)'") }()
    }

    /// Keras' activation by name, as the Keras that wrote the file defines it.
    static func activationFunction(named name: String, kerasMajorVersion: Int = 3) -> ActivationFunction? {
        switch name {
        case "linear", "identity": return .linear
        case "relu": return .relu()
        case "relu6": return .relu(maxValue: 6)
        case "leaky_relu": return .relu(negativeSlope: 0.2)
        case "sigmoid": return .sigmoid
        case "tanh": return .tanh
        case "softmax": return .softmax
        case "swish", "silu": return .swish
        case "elu": return .elu()
        case "gelu": return .gelu
        case "selu": return .selu
        case "softplus": return .softplus
        case "hard_sigmoid": return kerasMajorVersion >= 3 ? .hardSigmoid : .hardSigmoidKeras2
        case "hard_silu", "hard_swish": return .hardSwish
        default: return nil
        }
    }

    /// `op` followed by its activation node `<name>/activation` unless linear.
    func withActivation(_ op: any Layer, _ function: ActivationFunction) -> BuiltLayer {
        if function == .linear { return BuiltLayer([op]) }
        return BuiltLayer([op, Activation(name: nodeName + "/activation", function: function)], preActivation: 0)
    }

    // MARK: weights

    /// The layer's variables matched to `specs` (the class's variable order):
    /// by name for legacy HDF5 files, by position among the present variables
    /// for `.keras` files. Every stored variable must be used.
    func variables(_ specs: [VariableSpec]) throws -> [String: Tensor] {
        let stored = try loadVariables()
        let wanted = specs.filter(\.present)
        var result: [String: Tensor] = [:]
        switch stored {
        case .named(let list):
            var unused = list.map(\.name)
            for spec in wanted {
                let alone = spec.anyNameWhenAlone && wanted.count == 1 && list.count == 1
                guard let hit = list.first(where: { alone || $0.name == spec.name || spec.aliases.contains($0.name) }) else {
                    let have = list.isEmpty ? "none" : list.map(\.name).joined(separator: ", ")
                    throw invalid("weight '\(spec.name)' is missing from the file (stored: \(have))")
                }
                result[spec.name] = hit.tensor
                unused.removeAll { $0 == hit.name }
            }
            if !unused.isEmpty {
                throw invalid("unexpected stored weights \(unused.joined(separator: ", ")) for this configuration")
            }
        case .ordered(let list):
            guard list.count == wanted.count else {
                throw invalid(
                    "the file stores \(list.count) variables, this configuration has \(wanted.count) (\(wanted.map(\.name).joined(separator: ", ")))"
                )
            }
            for (spec, tensor) in zip(wanted, list) { result[spec.name] = tensor }
        }
        return result
    }

    /// Checks that a layer without weights has none stored.
    func expectNoVariables() throws {
        let stored = try loadVariables()
        if !stored.isEmpty { throw invalid("has stored weights but this layer class takes none") }
    }

    func checkShape(_ tensor: Tensor, _ what: String, _ expected: [Int]) throws {
        guard tensor.shape == expected else {
            throw invalid("\(what) has shape \(tensor.shape), expected \(expected)")
        }
    }
}
