import Engine
import Foundation

/// Builds the engine layers for one call of one Keras layer.
typealias LayerBuilder = @Sendable (LayerContext) throws -> BuiltLayer

/// Keras `class_name` → builder. A class that is not registered fails at load
/// time with an error naming the layer and its class. To support a new class,
/// add one builder: read the config through `LayerContext` (its accessors turn
/// bad or unsupported values into errors naming the layer and option), fetch
/// the weights with `variables(_:)` listing the class's variables in Keras'
/// own order, and return the engine layer(s).
struct LayerRegistry: Sendable {
    private(set) var builders: [String: LayerBuilder] = [:]

    func builder(for className: String) -> LayerBuilder? { builders[className] }

    mutating func register(_ className: String, _ builder: @escaping LayerBuilder) {
        builders[className] = builder
    }

    static let standard: LayerRegistry = {
        var r = LayerRegistry()
        r.register("Conv2D", buildConv2D)
        r.register("DepthwiseConv2D", buildDepthwiseConv2D)
        r.register("Dense", buildDense)
        r.register("BatchNormalization", buildBatchNormalization)
        r.register("Activation", buildActivation)
        r.register("ReLU", buildReLU)
        r.register("LeakyReLU", buildLeakyReLU)
        r.register("ELU", buildELU)
        r.register("Softmax", buildSoftmax)
        r.register("MaxPooling2D") { try buildPooling($0, max: true) }
        r.register("MaxPool2D") { try buildPooling($0, max: true) }
        r.register("AveragePooling2D") { try buildPooling($0, max: false) }
        r.register("AvgPool2D") { try buildPooling($0, max: false) }
        r.register("GlobalAveragePooling2D", buildGlobalAveragePooling2D)
        r.register("GlobalAvgPool2D", buildGlobalAveragePooling2D)
        r.register("GlobalMaxPooling2D", buildGlobalMaxPooling2D)
        r.register("GlobalMaxPool2D", buildGlobalMaxPooling2D)
        r.register("Rescaling", buildRescaling)
        r.register("Flatten", buildFlatten)
        r.register("ZeroPadding2D", buildZeroPadding2D)
        r.register("Add", buildAdd)
        r.register("Multiply", buildMultiply)
        r.register("Concatenate", buildConcatenate)
        // Layers that only act in training: the identity at inference.
        for cls in ["Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                    "ActivityRegularization", "Identity"] {
            r.register(cls, buildInferenceIdentity)
        }
        return r
    }()
}

// MARK: - Builders

private func spatialInput(_ ctx: LayerContext) throws -> [Int] {
    let s = try ctx.singleInputShape()
    guard s.count == 3 else { throw ctx.invalid("expects an [h, w, c] input, got \(s)") }
    return s
}

/// LoRA adapters (Keras 3 `lora_rank`) add weights the engine does not apply.
private func refuseLoRA(_ ctx: LayerContext) throws {
    if let r = ctx.value("lora_rank"), r != .number(0) { throw ctx.unsupported("lora_rank=\(r.compact)") }
}

private func buildConv2D(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    try refuseLoRA(ctx)
    if let g = ctx.value("groups"), g != .number(1) { throw ctx.unsupported("groups=\(g.compact)") }
    let filters = try ctx.int("filters")
    let kernelSize = try ctx.pair("kernel_size")
    let strides = try ctx.pair("strides", default: [1, 1])
    let dilation = try ctx.pair("dilation_rate", default: [1, 1])
    let padding = try ctx.padding()
    let useBias = try ctx.bool("use_bias", default: true)
    let activation = try ctx.activation()
    let input = try spatialInput(ctx)
    let v = try ctx.variables([VariableSpec(name: "kernel"), VariableSpec(name: "bias", present: useBias)])
    let kernel = v["kernel"]!
    let cin = input[2] > 0 ? input[2] : (kernel.rank == 4 ? kernel.shape[2] : -1)
    try ctx.checkShape(kernel, "kernel", kernelSize + [cin, filters])
    if let b = v["bias"] { try ctx.checkShape(b, "bias", [filters]) }
    let op = Conv2D(name: ctx.nodeName, kernel: kernel, bias: v["bias"], strides: strides, padding: padding,
                    dilation: dilation)
    return ctx.withActivation(op, activation)
}

private func buildDepthwiseConv2D(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    try refuseLoRA(ctx)
    let multiplier = try ctx.int("depth_multiplier", default: 1)
    let kernelSize = try ctx.pair("kernel_size")
    let strides = try ctx.pair("strides", default: [1, 1])
    let dilation = try ctx.pair("dilation_rate", default: [1, 1])
    let padding = try ctx.padding()
    let useBias = try ctx.bool("use_bias", default: true)
    let activation = try ctx.activation()
    let input = try spatialInput(ctx)
    let v = try ctx.variables([VariableSpec(name: "kernel", aliases: ["depthwise_kernel"]),
                               VariableSpec(name: "bias", present: useBias)])
    let kernel = v["kernel"]!
    let cin = input[2] > 0 ? input[2] : (kernel.rank == 4 ? kernel.shape[2] : -1)
    try ctx.checkShape(kernel, "depthwise kernel", kernelSize + [cin, multiplier])
    if let b = v["bias"] { try ctx.checkShape(b, "bias", [cin * multiplier]) }
    let op = DepthwiseConv2D(name: ctx.nodeName, kernel: kernel, bias: v["bias"], strides: strides,
                             padding: padding, dilation: dilation)
    return ctx.withActivation(op, activation)
}

private func buildDense(_ ctx: LayerContext) throws -> BuiltLayer {
    try refuseLoRA(ctx)
    if let q = ctx.value("quantization_config") { throw ctx.unsupported("quantization_config=\(q.compact.prefix(80))") }
    let units = try ctx.int("units")
    let useBias = try ctx.bool("use_bias", default: true)
    let activation = try ctx.activation()
    let input = try ctx.singleInputShape()
    guard let last = input.last else { throw ctx.invalid("expects an input with at least one axis") }
    let v = try ctx.variables([VariableSpec(name: "kernel"), VariableSpec(name: "bias", present: useBias)])
    let kernel = v["kernel"]!
    let fin = last > 0 ? last : (kernel.rank == 2 ? kernel.shape[0] : -1)
    try ctx.checkShape(kernel, "kernel", [fin, units])
    if let b = v["bias"] { try ctx.checkShape(b, "bias", [units]) }
    return ctx.withActivation(Dense(name: ctx.nodeName, kernel: kernel, bias: v["bias"]), activation)
}

private func buildBatchNormalization(_ ctx: LayerContext) throws -> BuiltLayer {
    let input = try ctx.singleInputShape()
    let rank = input.count + 1  // with the batch axis
    var axes: [Int] = []
    if let a = ctx.value("axis") {
        if let i = a.int { axes = [i] } else if let list = a.array { axes = list.compactMap(\.int) }
        guard !axes.isEmpty else { throw ctx.invalid("'axis' is not an integer: \(a.compact)") }
    } else {
        axes = [-1]
    }
    guard axes.count == 1, axes[0] == -1 || axes[0] == rank - 1 else {
        throw ctx.unsupported("axis=\(ctx.value("axis")?.compact ?? "?") (only the last axis, -1 or \(rank - 1), is supported)")
    }
    if try ctx.bool("renorm", default: false) { throw ctx.unsupported("renorm=true") }
    let center = try ctx.bool("center", default: true)
    let scale = try ctx.bool("scale", default: true)
    let epsilon = try ctx.float("epsilon", default: 1e-3)
    let v = try ctx.variables([
        VariableSpec(name: "gamma", present: scale),
        VariableSpec(name: "beta", present: center),
        VariableSpec(name: "moving_mean"),
        VariableSpec(name: "moving_variance"),
    ])
    let c = input.last.flatMap { $0 > 0 ? $0 : nil } ?? v["moving_mean"]!.count
    for key in ["gamma", "beta", "moving_mean", "moving_variance"] {
        if let t = v[key] { try ctx.checkShape(t, key, [c]) }
    }
    return BuiltLayer([BatchNormalization(name: ctx.nodeName, gamma: v["gamma"], beta: v["beta"],
                                          movingMean: v["moving_mean"]!, movingVariance: v["moving_variance"]!,
                                          epsilon: epsilon)])
}

/// Softmax only over the last axis.
private func checkSoftmaxAxis(_ ctx: LayerContext) throws {
    guard let a = ctx.value("axis") else { return }
    let rank = try ctx.singleInputShape().count + 1
    let axis = a.int ?? a.array.flatMap { $0.count == 1 ? $0[0].int : nil }
    guard let axis, axis == -1 || axis == rank - 1 else { throw ctx.unsupported("axis=\(a.compact)") }
}

private func buildActivation(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    let f = try ctx.activation()
    try ctx.expectNoVariables()
    return BuiltLayer([Activation(name: ctx.nodeName, function: f, kind: "Activation")])
}

private func buildReLU(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    let maxValue = try ctx.optionalFloat("max_value")
    let slope = try ctx.float("negative_slope", default: 0)
    let threshold = try ctx.float("threshold", default: 0)
    if let m = maxValue, m < 0 { throw ctx.invalid("max_value=\(m) is negative") }
    try ctx.expectNoVariables()
    return BuiltLayer([Activation(name: ctx.nodeName,
                                  function: .relu(maxValue: maxValue, negativeSlope: slope, threshold: threshold),
                                  kind: "ReLU")])
}

private func buildLeakyReLU(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    // Keras 3 calls the slope `negative_slope`, Keras 2 `alpha`; both default to 0.3.
    let slope = try ctx.value("negative_slope") != nil ? ctx.float("negative_slope") : ctx.float("alpha", default: 0.3)
    try ctx.expectNoVariables()
    return BuiltLayer([Activation(name: ctx.nodeName, function: .relu(negativeSlope: slope), kind: "LeakyReLU")])
}

private func buildELU(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    let alpha = try ctx.float("alpha", default: 1)
    try ctx.expectNoVariables()
    return BuiltLayer([Activation(name: ctx.nodeName, function: .elu(alpha: alpha), kind: "ELU")])
}

private func buildSoftmax(_ ctx: LayerContext) throws -> BuiltLayer {
    try checkSoftmaxAxis(ctx)
    try ctx.expectNoVariables()
    return BuiltLayer([Activation(name: ctx.nodeName, function: .softmax, kind: "Softmax")])
}

private func buildPooling(_ ctx: LayerContext, max: Bool) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    let pool = try ctx.pair("pool_size", default: [2, 2])
    let strides = try ctx.pair("strides", default: pool)
    let padding = try ctx.padding()
    let op: any Layer = max
        ? MaxPooling2D(name: ctx.nodeName, poolSize: pool, strides: strides, padding: padding)
        : AveragePooling2D(name: ctx.nodeName, poolSize: pool, strides: strides, padding: padding)
    try ctx.expectNoVariables()
    return BuiltLayer([op])
}

private func buildGlobalAveragePooling2D(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    try ctx.expectNoVariables()
    return BuiltLayer([GlobalAveragePooling2D(name: ctx.nodeName, keepDims: try ctx.bool("keepdims", default: false))])
}

private func buildGlobalMaxPooling2D(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    try ctx.expectNoVariables()
    return BuiltLayer([GlobalMaxPooling2D(name: ctx.nodeName, keepDims: try ctx.bool("keepdims", default: false))])
}

private func buildRescaling(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    // Per-channel lists are legal Keras but unused by the applications; refuse them by name.
    for key in ["scale", "offset"] {
        if let v = ctx.value(key), v.double == nil { throw ctx.unsupported("\(key)=\(v.compact) (only a single number)") }
    }
    try ctx.expectNoVariables()
    return BuiltLayer([Rescaling(name: ctx.nodeName, scale: try ctx.float("scale"), offset: try ctx.float("offset", default: 0))])
}

private func buildFlatten(_ ctx: LayerContext) throws -> BuiltLayer {
    let input = try ctx.singleInputShape()
    if let f = ctx.value("data_format")?.string, f == "channels_first", input.count > 1 {
        throw ctx.unsupported("data_format='channels_first'")
    }
    try ctx.expectNoVariables()
    return BuiltLayer([Flatten(name: ctx.nodeName)])
}

private func buildZeroPadding2D(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    let p = ctx.value("padding") ?? .number(1)
    var tb: [Int]?, lr: [Int]?
    func ints(_ v: JSON) -> [Int]? {
        if let i = v.int { return [i, i] }
        if let a = v.array, a.count == 2, let x = a[0].int, let y = a[1].int { return [x, y] }
        return nil
    }
    if let i = p.int {
        tb = [i, i]; lr = [i, i]
    } else if let a = p.array, a.count == 2 {
        if let x = a[0].int, let y = a[1].int {
            tb = [x, x]; lr = [y, y]
        } else {
            tb = ints(a[0]); lr = ints(a[1])
        }
    }
    guard let tb, let lr, (tb + lr).allSatisfy({ $0 >= 0 }) else {
        throw ctx.invalid("'padding' is not an int, a pair or a pair of pairs of non-negative ints: \(p.compact)")
    }
    try ctx.expectNoVariables()
    return BuiltLayer([ZeroPadding2D(name: ctx.nodeName, top: tb[0], bottom: tb[1], left: lr[0], right: lr[1])])
}

private func buildAdd(_ ctx: LayerContext) throws -> BuiltLayer {
    guard ctx.inputShapes.count >= 2 else { throw ctx.invalid("Add needs at least 2 inputs, got \(ctx.inputShapes.count)") }
    try ctx.expectNoVariables()
    return BuiltLayer([Add(name: ctx.nodeName)])
}

private func buildMultiply(_ ctx: LayerContext) throws -> BuiltLayer {
    guard ctx.inputShapes.count >= 2 else { throw ctx.invalid("Multiply needs at least 2 inputs, got \(ctx.inputShapes.count)") }
    try ctx.expectNoVariables()
    return BuiltLayer([Multiply(name: ctx.nodeName)])
}

private func buildConcatenate(_ ctx: LayerContext) throws -> BuiltLayer {
    guard ctx.inputShapes.count >= 2 else { throw ctx.invalid("Concatenate needs at least 2 inputs, got \(ctx.inputShapes.count)") }
    let rank = ctx.inputShapes[0].count
    let axis = try ctx.int("axis", default: -1)
    guard axis == -1 || axis == rank else { throw ctx.unsupported("axis=\(axis) (only the last axis)") }
    try ctx.expectNoVariables()
    return BuiltLayer([Concatenate(name: ctx.nodeName)])
}

private func buildInferenceIdentity(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    try ctx.expectNoVariables()
    return BuiltLayer([Identity(name: ctx.nodeName, kind: ctx.className)])
}
