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

    /// The key of a Keras 3 operation layer (`keras.src.ops.numpy.Add` is not the `Add` layer).
    static func operationKey(_ className: String) -> String { "operation:" + className }

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
        r.register("Normalization", buildNormalization)
        r.register("LayerNormalization", buildLayerNormalization)
        r.register("LayerScale", buildLayerScale)
        r.register("CustomScaleLayer", buildCustomScaleLayer)
        // tf_keras registers the applications' own layers under the package "Custom".
        r.register("Custom>CustomScaleLayer", buildCustomScaleLayer)
        r.register("Custom>LayerScale", buildLayerScale)
        r.register("SeparableConv2D", buildSeparableConv2D)
        r.register("SeparableConvolution2D", buildSeparableConv2D)
        r.register("PReLU", buildPReLU)
        r.register("Reshape", buildReshape)
        r.register("Cropping2D", buildCropping2D)
        r.register("TFOpLambda", buildTFOpLambda)
        for (cls, op) in [
            ("Add", BinaryOperation.add), ("Subtract", .subtract), ("Multiply", .multiply),
            ("Divide", .divide), ("TrueDivide", .divide),
        ] {
            r.register(operationKey(cls)) { try buildBinaryOperation($0, op) }
        }
        r.register("Flatten", buildFlatten)
        r.register("ZeroPadding2D", buildZeroPadding2D)
        r.register("Add", buildAdd)
        r.register("Multiply", buildMultiply)
        r.register("Concatenate", buildConcatenate)
        // Layers that only act in training: the identity at inference.
        for cls in [
            "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
            "ActivityRegularization", "Identity", "StochasticDepth",
        ] {
            r.register(cls, buildInferenceIdentity)
        }
        registerImageLayers(&r)
        return r
    }()
}

// MARK: - Builders

func spatialInput(_ ctx: LayerContext) throws -> [Int] {
    let s = try ctx.singleInputShape()
    guard s.count == 3 else { throw ctx.invalid("expects an [h, w, c] input, got \(s)") }
    return s
}

/// LoRA adapters (Keras 3 `lora_rank`) add weights the engine does not apply.
private func refuseLoRA(_ ctx: LayerContext) throws {
    if let r = ctx.value("lora_rank"), r != .number(0) { throw ctx.unsupported("lora_rank=\(r.compact)") }
}

/// The options every convolution class shares, read and checked once.
struct ConvolutionOptions {
    let kernelSize: [Int]
    let strides: [Int]
    let dilation: [Int]
    let padding: Padding
    let useBias: Bool
    let activation: ActivationFunction

    init(_ ctx: LayerContext) throws {
        try ctx.requireChannelsLast()
        try refuseLoRA(ctx)
        kernelSize = try ctx.pair("kernel_size")
        strides = try ctx.pair("strides", default: [1, 1])
        dilation = try ctx.pair("dilation_rate", default: [1, 1])
        padding = try ctx.padding()
        useBias = try ctx.bool("use_bias", default: true)
        activation = try ctx.activation()
    }
}

private func buildConv2D(_ ctx: LayerContext) throws -> BuiltLayer {
    let groups = try ctx.int("groups", default: 1)
    let filters = try ctx.int("filters")
    if groups != 1 {
        // One group per input channel is a depthwise convolution (ConvNeXt writes its
        // 7×7 depthwise convolutions so); other groupings are not supported.
        let cin = try spatialInput(ctx)[2]
        guard groups > 0, cin > 0, cin % groups == 0, filters % groups == 0 else {
            throw ctx.invalid("groups=\(groups) does not divide the \(cin) input channels and \(filters) filters")
        }
        if groups == cin { return try buildGroupedAsDepthwise(ctx, multiplier: filters / cin) }
        return try buildGroupedConv2D(ctx, groups: groups, filters: filters, inputChannels: cin)
    }
    let o = try ConvolutionOptions(ctx)
    let input = try spatialInput(ctx)
    let v = try ctx.variables([VariableSpec(name: "kernel"), VariableSpec(name: "bias", present: o.useBias)])
    let kernel = v["kernel"]!
    let cin = input[2] > 0 ? input[2] : (kernel.rank == 4 ? kernel.shape[2] : -1)
    try ctx.checkShape(kernel, "kernel", o.kernelSize + [cin, filters])
    if let b = v["bias"] { try ctx.checkShape(b, "bias", [filters]) }
    let op = Conv2D(
        name: ctx.nodeName, kernel: kernel, bias: v["bias"], strides: o.strides, padding: o.padding,
        dilation: o.dilation)
    return ctx.withActivation(op, o.activation)
}

/// A Conv2D with one group per input channel: its kernel [kh, kw, 1, c·m] holds, in
/// order, the m filters of each channel — a depthwise kernel [kh, kw, c, m] reshaped.
private func buildGroupedAsDepthwise(_ ctx: LayerContext, multiplier: Int) throws -> BuiltLayer {
    let o = try ConvolutionOptions(ctx)
    let cin = try spatialInput(ctx)[2]
    let v = try ctx.variables([VariableSpec(name: "kernel"), VariableSpec(name: "bias", present: o.useBias)])
    let kernel = v["kernel"]!
    try ctx.checkShape(kernel, "kernel", o.kernelSize + [1, cin * multiplier])
    if let b = v["bias"] { try ctx.checkShape(b, "bias", [cin * multiplier]) }
    let op = DepthwiseConv2D(
        name: ctx.nodeName, kernel: kernel.reshaped(o.kernelSize + [cin, multiplier]), bias: v["bias"],
        strides: o.strides, padding: o.padding, dilation: o.dilation)
    return ctx.withActivation(op, o.activation)
}

private func buildDepthwiseConv2D(_ ctx: LayerContext) throws -> BuiltLayer {
    let multiplier = try ctx.int("depth_multiplier", default: 1)
    let o = try ConvolutionOptions(ctx)
    let input = try spatialInput(ctx)
    let v = try ctx.variables([
        VariableSpec(name: "kernel", aliases: ["depthwise_kernel"]),
        VariableSpec(name: "bias", present: o.useBias),
    ])
    let kernel = v["kernel"]!
    let cin = input[2] > 0 ? input[2] : (kernel.rank == 4 ? kernel.shape[2] : -1)
    try ctx.checkShape(kernel, "depthwise kernel", o.kernelSize + [cin, multiplier])
    if let b = v["bias"] { try ctx.checkShape(b, "bias", [cin * multiplier]) }
    let op = DepthwiseConv2D(
        name: ctx.nodeName, kernel: kernel, bias: v["bias"], strides: o.strides,
        padding: o.padding, dilation: o.dilation)
    return ctx.withActivation(op, o.activation)
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
    try requireLastAxis(ctx)
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
    return BuiltLayer([
        BatchNormalization(
            name: ctx.nodeName, gamma: v["gamma"], beta: v["beta"],
            movingMean: v["moving_mean"]!, movingVariance: v["moving_variance"]!,
            epsilon: epsilon)
    ])
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
    return BuiltLayer([
        Activation(
            name: ctx.nodeName,
            function: .relu(maxValue: maxValue, negativeSlope: slope, threshold: threshold),
            kind: "ReLU")
    ])
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
    let op: any Layer =
        max
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

/// A number, or a list of numbers (one per channel), from the config.
private func numbers(_ ctx: LayerContext, _ key: String, default def: Float) throws -> [Float] {
    guard let v = ctx.value(key) else { return [def] }
    if let d = v.double { return [Float(d)] }
    if let a = v.array, !a.isEmpty, a.allSatisfy({ $0.double != nil }) { return a.map { Float($0.double!) } }
    throw ctx.unsupported("\(key)=\(v.compact.prefix(80)) (a number or a list of numbers)")
}

/// Checks that a per-channel list fits the input's channels.
private func checkChannelCount(_ ctx: LayerContext, _ values: [Float], _ what: String) throws {
    guard values.count > 1 else { return }
    let c = try ctx.singleInputShape().last ?? -1
    if c != -1 && c != values.count {
        throw ctx.invalid("\(what) has \(values.count) values for \(c) channels")
    }
}

/// The single normalised axis must be the last (channels) axis: -1, or its index counting the batch axis.
private func requireLastAxis(_ ctx: LayerContext, default def: Int = -1) throws {
    let rank = try ctx.singleInputShape().count + 1
    var axes: [Int] = [def]
    if let a = ctx.value("axis") {
        if let i = a.int { axes = [i] } else if let list = a.array { axes = list.compactMap(\.int) } else { axes = [] }
        guard !axes.isEmpty, axes.count == (a.array?.count ?? 1) else {
            throw ctx.invalid("'axis' is not an integer or a list of integers: \(a.compact)")
        }
    }
    guard axes.count == 1, axes[0] == -1 || axes[0] == rank - 1 else {
        throw ctx.unsupported("axis=\(ctx.value("axis")?.compact ?? "?") (only the last axis, -1 or \(rank - 1), is supported)")
    }
}

private func buildRescaling(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    let scale = try numbers(ctx, "scale", default: 1)
    let offset = try numbers(ctx, "offset", default: 0)
    guard ctx.value("scale") != nil else { throw ctx.invalid("config has no 'scale'") }
    try checkChannelCount(ctx, scale, "scale")
    try checkChannelCount(ctx, offset, "offset")
    try ctx.expectNoVariables()
    return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: "Rescaling", scale: scale, offset: offset)])
}

/// Keras `Normalization`: (x − mean) / max(√variance, 1e-7) per channel, the mean and
/// variance given in the config (ConvNeXt) or stored as weights by `adapt` (EfficientNet).
private func buildNormalization(_ ctx: LayerContext) throws -> BuiltLayer {
    try requireLastAxis(ctx)
    if try ctx.bool("invert", default: false) { throw ctx.unsupported("invert=true") }
    var mean: [Float]
    var variance: [Float]
    if ctx.value("mean") != nil || ctx.value("variance") != nil {
        guard ctx.value("mean") != nil, ctx.value("variance") != nil else {
            throw ctx.invalid("gives only one of mean and variance")
        }
        mean = try numbers(ctx, "mean", default: 0)
        variance = try numbers(ctx, "variance", default: 1)
        try ctx.expectNoVariables()
    } else {
        let v = try ctx.variables([VariableSpec(name: "mean"), VariableSpec(name: "variance"), VariableSpec(name: "count")])
        mean = v["mean"]!.scalars
        variance = v["variance"]!.scalars
    }
    guard mean.count == variance.count || mean.count == 1 || variance.count == 1 else {
        throw ctx.invalid("mean has \(mean.count) values and variance \(variance.count)")
    }
    try checkChannelCount(ctx, mean, "mean")
    try checkChannelCount(ctx, variance, "variance")
    if let bad = variance.first(where: { !($0 >= 0) }) { throw ctx.invalid("variance \(bad) is negative or not a number") }
    // Keras' backend epsilon guards a zero variance.
    let scale = variance.map { 1 / max($0.squareRoot(), 1e-7) }
    return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: "Normalization", center: mean, scale: scale)])
}

private func buildLayerNormalization(_ ctx: LayerContext) throws -> BuiltLayer {
    try requireLastAxis(ctx)
    if try ctx.bool("rms_scaling", default: false) { throw ctx.unsupported("rms_scaling=true") }
    let center = try ctx.bool("center", default: true)
    let scale = try ctx.bool("scale", default: true)
    let epsilon = try ctx.float("epsilon", default: 1e-3)
    let v = try ctx.variables([VariableSpec(name: "gamma", present: scale), VariableSpec(name: "beta", present: center)])
    let c = try ctx.singleInputShape().last ?? -1
    for key in ["gamma", "beta"] {
        if let t = v[key], c != -1 { try ctx.checkShape(t, key, [c]) }
    }
    return BuiltLayer([LayerNormalization(name: ctx.nodeName, gamma: v["gamma"], beta: v["beta"], epsilon: epsilon)])
}

/// ConvNeXt's `LayerScale` (keras.applications): x · γ per channel. Its one weight
/// has no name of its own in Keras 3 (`variable_N`).
private func buildLayerScale(_ ctx: LayerContext) throws -> BuiltLayer {
    let c = try ctx.singleInputShape().last ?? -1
    let v = try ctx.variables([VariableSpec(name: "gamma", anyNameWhenAlone: true)])
    let gamma = v["gamma"]!
    if c != -1 { try ctx.checkShape(gamma, "gamma", [c]) }
    if let dim = ctx.value("projection_dim")?.int, gamma.count != dim {
        throw ctx.invalid("gamma has \(gamma.count) values, projection_dim is \(dim)")
    }
    return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: "LayerScale", scale: gamma.scalars)])
}

/// InceptionResNetV2's `CustomScaleLayer` (keras.applications): inputs[0] + inputs[1] · scale.
private func buildCustomScaleLayer(_ ctx: LayerContext) throws -> BuiltLayer {
    guard ctx.inputShapes.count == 2 else { throw ctx.invalid("takes 2 inputs, got \(ctx.inputShapes.count)") }
    let scale = try ctx.float("scale")
    try ctx.expectNoVariables()
    return BuiltLayer([Add(name: ctx.nodeName, coefficients: [1, scale], kind: "CustomScaleLayer")])
}

/// `SeparableConv2D`: a depthwise convolution (strides, padding, dilation) then a
/// 1×1 pointwise convolution with the bias, as two engine nodes (`<name>/depthwise`, `<name>`).
private func buildSeparableConv2D(_ ctx: LayerContext) throws -> BuiltLayer {
    let filters = try ctx.int("filters")
    let multiplier = try ctx.int("depth_multiplier", default: 1)
    let o = try ConvolutionOptions(ctx)
    let input = try spatialInput(ctx)
    let v = try ctx.variables([
        VariableSpec(name: "depthwise_kernel"), VariableSpec(name: "pointwise_kernel"),
        VariableSpec(name: "bias", present: o.useBias),
    ])
    let depthwise = v["depthwise_kernel"]!
    let pointwise = v["pointwise_kernel"]!
    let cin = input[2] > 0 ? input[2] : (depthwise.rank == 4 ? depthwise.shape[2] : -1)
    try ctx.checkShape(depthwise, "depthwise kernel", o.kernelSize + [cin, multiplier])
    try ctx.checkShape(pointwise, "pointwise kernel", [1, 1, cin * multiplier, filters])
    if let b = v["bias"] { try ctx.checkShape(b, "bias", [filters]) }
    let ops: [any Layer] = [
        DepthwiseConv2D(
            name: ctx.nodeName + "/depthwise", kernel: depthwise, bias: nil, strides: o.strides,
            padding: o.padding, dilation: o.dilation),
        Conv2D(name: ctx.nodeName, kernel: pointwise, bias: v["bias"], strides: [1, 1], padding: .valid, dilation: [1, 1]),
    ]
    if o.activation == .linear { return BuiltLayer(ops) }
    return BuiltLayer(ops + [Activation(name: ctx.nodeName + "/activation", function: o.activation)], preActivation: 1)
}

private func buildPReLU(_ ctx: LayerContext) throws -> BuiltLayer {
    let input = try ctx.singleInputShape()
    var shared: [Int] = []
    if let a = ctx.value("shared_axes") {
        if let i = a.int {
            shared = [i]
        } else if let list = a.array, list.allSatisfy({ $0.int != nil }) {
            shared = list.map { $0.int! }
        } else {
            throw ctx.invalid("'shared_axes' is not a list of integers: \(a.compact)")
        }
    }
    for axis in shared where !(1...input.count).contains(axis) {
        throw ctx.unsupported("shared_axes=\(ctx.value("shared_axes")!.compact) (axes 1...\(input.count) of the input)")
    }
    let v = try ctx.variables([VariableSpec(name: "alpha")])
    var alpha = v["alpha"]!
    let expected = input.enumerated().map { shared.contains($0.offset + 1) ? 1 : $0.element }
    guard alpha.count == expected.reduce(1, *), !expected.contains(-1) || alpha.rank == input.count else {
        throw ctx.invalid("alpha has shape \(alpha.shape), expected \(expected)")
    }
    if alpha.shape != expected && !expected.contains(-1) { alpha = alpha.reshaped(expected) }
    return BuiltLayer([PReLU(name: ctx.nodeName, alpha: alpha)])
}

private func buildReshape(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    guard let list = ctx.value("target_shape")?.array, list.allSatisfy({ $0.int != nil }) else {
        throw ctx.invalid("'target_shape' is not a list of integers: \(ctx.value("target_shape")?.compact ?? "missing")")
    }
    try ctx.expectNoVariables()
    return BuiltLayer([Reshape(name: ctx.nodeName, targetShape: list.map { $0.int! })])
}

private func buildCropping2D(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    guard let (tb, lr) = try borderPairs(ctx, "cropping") else {
        throw ctx.invalid(
            "'cropping' is not an int, a pair or a pair of pairs of non-negative ints: \(ctx.value("cropping")?.compact ?? "?")")
    }
    try ctx.expectNoVariables()
    return BuiltLayer([Cropping2D(name: ctx.nodeName, top: tb[0], bottom: tb[1], left: lr[0], right: lr[1])])
}

/// Keras' 2-D border spec (`padding`, `cropping`): an int, (rows, cols), or
/// ((top, bottom), (left, right)); nil when malformed or negative. Absent: 1 for padding, 0 for cropping.
private func borderPairs(_ ctx: LayerContext, _ key: String) throws -> (tb: [Int], lr: [Int])? {
    let p = ctx.value(key) ?? .number(key == "padding" ? 1 : 0)
    var tb: [Int]?
    var lr: [Int]?
    func ints(_ v: JSON) -> [Int]? {
        if let i = v.int { return [i, i] }
        if let a = v.array, a.count == 2, let x = a[0].int, let y = a[1].int { return [x, y] }
        return nil
    }
    if let i = p.int {
        tb = [i, i]
        lr = [i, i]
    } else if let a = p.array, a.count == 2 {
        if let x = a[0].int, let y = a[1].int {
            tb = [x, x]
            lr = [y, y]
        } else {
            tb = ints(a[0])
            lr = ints(a[1])
        }
    }
    guard let tb, let lr, (tb + lr).allSatisfy({ $0 >= 0 }) else { return nil }
    return (tb, lr)
}

/// Arithmetic written on tensors, recorded as a layer.
enum BinaryOperation: String {
    case add, subtract, multiply, divide
}

/// Keras 2 `TFOpLambda`: a TensorFlow function called on a tensor, named in `function`.
/// Supported: the arithmetic keras.applications writes (`x + 3.0`, `x * (1/6)`, `x + y`)
/// and its siblings; anything else is refused by name.
private func buildTFOpLambda(_ ctx: LayerContext) throws -> BuiltLayer {
    let function = try ctx.string("function")
    let table: [String: BinaryOperation] = [
        "__operators__.add": .add, "math.add": .add, "add": .add,
        "__operators__.sub": .subtract, "math.subtract": .subtract, "subtract": .subtract,
        "math.multiply": .multiply, "__operators__.mul": .multiply, "multiply": .multiply,
        "math.truediv": .divide, "__operators__.truediv": .divide, "math.divide": .divide, "truediv": .divide,
    ]
    guard let op = table[function] else {
        throw ctx.unsupported("function='\(function)' (TFOpLambda supports the arithmetic \(table.keys.sorted().joined(separator: ", ")))")
    }
    return try buildBinaryOperation(ctx, op)
}

/// `a op b` with tensors or constants on either side: two tensors become Add
/// (Σ with coefficients for subtraction) or Multiply; a tensor and a constant
/// (a number, or one number per channel) become a ChannelAffine node.
private func buildBinaryOperation(_ ctx: LayerContext, _ op: BinaryOperation) throws -> BuiltLayer {
    let operands = ctx.operands
    guard operands.count == 2 else {
        throw ctx.unsupported("\(op.rawValue) with \(operands.count) arguments (2 are supported)")
    }
    try ctx.expectNoVariables()
    let kind = ctx.className
    func constant(_ j: JSON) throws -> [Float] {
        if let d = j.double { return [Float(d)] }
        if let a = j.array, !a.isEmpty, a.allSatisfy({ $0.double != nil }) { return a.map { Float($0.double!) } }
        throw ctx.unsupported("\(op.rawValue) with the constant \(j.compact.prefix(80)) (a number or a list of numbers)")
    }
    switch (operands[0], operands[1]) {
    case (.tensor, .tensor):
        switch op {
        case .add: return BuiltLayer([Add(name: ctx.nodeName, kind: kind)])
        case .subtract: return BuiltLayer([Add(name: ctx.nodeName, coefficients: [1, -1], kind: kind)])
        case .multiply: return BuiltLayer([Multiply(name: ctx.nodeName)])
        case .divide: throw ctx.unsupported("division of a tensor by a tensor")
        }
    case (.tensor, .constant(let j)):
        let c = try constant(j)
        try checkChannelCount(ctx, c, "the constant")
        switch op {
        case .add: return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: kind, offset: c)])
        case .subtract: return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: kind, center: c)])
        case .multiply: return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: kind, scale: c)])
        case .divide: return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: kind, scale: c.map { 1 / $0 })])
        }
    case (.constant(let j), .tensor):
        let c = try constant(j)
        try checkChannelCount(ctx, c, "the constant")
        switch op {
        case .add: return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: kind, offset: c)])
        case .subtract: return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: kind, scale: [-1], offset: c)])
        case .multiply: return BuiltLayer([ChannelAffine(name: ctx.nodeName, kind: kind, scale: c)])
        case .divide: throw ctx.unsupported("division of a constant by a tensor")
        }
    case (.constant, .constant):
        throw ctx.invalid("\(op.rawValue) of two constants has no tensor input")
    }
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
    guard let (tb, lr) = try borderPairs(ctx, "padding") else {
        throw ctx.invalid(
            "'padding' is not an int, a pair or a pair of pairs of non-negative ints: \(ctx.value("padding")?.compact ?? "?")")
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

func buildInferenceIdentity(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    try ctx.expectNoVariables()
    return BuiltLayer([Identity(name: ctx.nodeName, kind: ctx.className)])
}
