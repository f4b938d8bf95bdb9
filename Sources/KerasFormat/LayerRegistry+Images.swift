import Engine

/// The layers of models as Keras users build them around a convolutional base:
/// augmentation in front (identity at inference), resizing and cropping inside,
/// transposed convolutions and upsampling in segmentation decoders, merges —
/// and the classes that hold Python code, refused with what to do instead.
extension LayerRegistry {
    /// Keras 3's image augmentation layers, which pass their input through at
    /// inference (checked against Keras 3.15 with `training=False`); tf_keras'
    /// `RandomHeight`/`RandomWidth` likewise.
    static let inferenceIdentityAugmentations = [
        "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast", "RandomBrightness",
        "RandomErasing", "RandomGrayscale", "RandomHue", "RandomSaturation", "RandomSharpness", "RandomShear",
        "RandomColorJitter", "RandomColorDegeneration", "RandomGaussianBlur", "RandomPerspective",
        "RandomElasticTransform", "RandomInvert", "RandomPosterization", "AugMix", "RandAugment", "MixUp", "CutMix",
        "Solarization", "Equalization", "RandomHeight", "RandomWidth",
    ]

    static func registerImageLayers(_ r: inout LayerRegistry) {
        for cls in inferenceIdentityAugmentations { r.register(cls, buildAugmentation) }
        r.register("RandomCrop", buildRandomCrop)
        r.register("Pipeline", buildPipeline)
        r.register("Resizing", buildResizing)
        r.register("CenterCrop", buildCenterCrop)
        r.register("UpSampling2D", buildUpSampling2D)
        r.register("Conv2DTranspose", buildConv2DTranspose)
        r.register("Convolution2DTranspose", buildConv2DTranspose)
        r.register("Maximum") { try buildExtremum($0, largest: true) }
        r.register("Minimum") { try buildExtremum($0, largest: false) }
        r.register("Average", buildAverage)
        r.register("Subtract", buildSubtract)
        r.register("GroupNormalization", buildGroupNormalization)
        r.register("UnitNormalization", buildUnitNormalization)
        r.register("RMSNormalization", buildRMSNormalization)
        r.register("AdaptiveAveragePooling2D") { try buildAdaptivePooling($0, max: false) }
        r.register("AdaptiveMaxPooling2D") { try buildAdaptivePooling($0, max: true) }
        r.register("Permute", buildPermute)
        for (cls, reason) in refusedClasses { r.register(cls) { throw $0.refused(reason) } }
    }

    /// Classes that run Python code or another framework's graph: nothing in the file says what they compute.
    static let refusedClasses: [(String, String)] = [
        (
            "Lambda",
            "a Lambda layer runs Python code stored in the file, which ConvLens cannot run; rebuild the model with Keras layers "
                + "for that step (for arithmetic, plain operators such as x * 2 or keras.ops.add are read), or save the "
                + "convolutional part alone"
        ),
        (
            "TorchModuleWrapper",
            "a TorchModuleWrapper holds a PyTorch module, which ConvLens cannot run; export the model with Keras layers instead"
        ),
        (
            "TFSMLayer",
            "a TFSMLayer calls a TensorFlow SavedModel outside the file, which ConvLens cannot run; load the SavedModel in Keras "
                + "and save it as a Keras model with Keras layers"
        ),
        (
            "AutoContrast",
            "AutoContrast rescales each image by its own minimum and maximum at inference; this class is not implemented yet "
                + "(remove it and give the profile's preprocessing instead)"
        ),
    ]
}

private func buildAugmentation(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    return BuiltLayer([Identity(name: ctx.nodeName, kind: ctx.className)])
}

/// Keras 3's `RandomCrop` passes its input through at inference; tf_keras' resizes
/// it to the crop size (`smart_resize`: the largest centred window of the target's
/// aspect, resized bilinearly).
private func buildRandomCrop(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    let (h, w) = (try ctx.int("height"), try ctx.int("width"))
    guard h > 0, w > 0 else { throw ctx.invalid("height \(h) and width \(w) must be positive") }
    if ctx.kerasMajorVersion >= 3 { return BuiltLayer([Identity(name: ctx.nodeName, kind: ctx.className)]) }
    return BuiltLayer([
        Resize2D(name: ctx.nodeName, kind: ctx.className, size: .fixed(height: h, width: w), fit: .cropToAspect)
    ])
}

/// Keras 3 `Pipeline`: its layers in order. Supported when every one is an
/// augmentation that passes its input through at inference.
private func buildPipeline(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try ctx.singleInputShape()
    let layers = ctx.value("layers")?.array ?? []
    for entry in layers {
        let cls = entry["class_name"]?.string ?? "?"
        guard LayerRegistry.inferenceIdentityAugmentations.contains(cls) else {
            throw ctx.unsupported("a \(cls) inside the Pipeline (only augmentation layers, which inference skips)")
        }
    }
    return BuiltLayer([Identity(name: ctx.nodeName, kind: ctx.className)])
}

private func interpolation(_ ctx: LayerContext, default def: String) throws -> ResizeInterpolation {
    let name = try ctx.string("interpolation", default: def).lowercased()
    guard let i = ResizeInterpolation(rawValue: name) else {
        let known = ResizeInterpolation.allCases.map(\.rawValue).joined(separator: ", ")
        throw ctx.unsupported("interpolation='\(name)' (\(known))")
    }
    return i
}

private func buildResizing(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    let (h, w) = (try ctx.int("height"), try ctx.int("width"))
    guard h > 0, w > 0 else { throw ctx.invalid("height \(h) and width \(w) must be positive") }
    let method = try interpolation(ctx, default: "bilinear")
    let crop = try ctx.bool("crop_to_aspect_ratio", default: false)
    let pad = try ctx.bool("pad_to_aspect_ratio", default: false)
    if crop && pad { throw ctx.invalid("crop_to_aspect_ratio and pad_to_aspect_ratio are both true") }
    if pad, let mode = ctx.value("fill_mode")?.string, mode != "constant" { throw ctx.unsupported("fill_mode='\(mode)'") }
    let fit: Resize2D.Fit = crop ? .cropToAspect : pad ? .padToAspect(fill: try ctx.float("fill_value", default: 0)) : .stretch
    try ctx.expectNoVariables()
    return BuiltLayer([
        Resize2D(
            name: ctx.nodeName, kind: ctx.className, size: .fixed(height: h, width: w), fit: fit, interpolation: method,
            antialias: try ctx.bool("antialias", default: false))
    ])
}

private func buildCenterCrop(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    let (h, w) = (try ctx.int("height"), try ctx.int("width"))
    guard h > 0, w > 0 else { throw ctx.invalid("height \(h) and width \(w) must be positive") }
    try ctx.expectNoVariables()
    return BuiltLayer([Resize2D(name: ctx.nodeName, kind: ctx.className, size: .fixed(height: h, width: w), fit: .centreCrop)])
}

private func buildUpSampling2D(_ ctx: LayerContext) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    let size = try ctx.pair("size", default: [2, 2])
    guard size.allSatisfy({ $0 <= 1 << 12 }) else { throw ctx.invalid("size \(size) is larger than 4096") }
    let method = try interpolation(ctx, default: "nearest")
    try ctx.expectNoVariables()
    return BuiltLayer([
        Resize2D(name: ctx.nodeName, kind: ctx.className, size: .scaled(height: size[0], width: size[1]), interpolation: method)
    ])
}

private func buildConv2DTranspose(_ ctx: LayerContext) throws -> BuiltLayer {
    let filters = try ctx.int("filters")
    if let g = ctx.value("groups")?.int, g != 1 { throw ctx.unsupported("groups=\(g)") }
    let o = try ConvolutionOptions(ctx)
    if o.dilation != [1, 1] {
        throw ctx.unsupported(
            "dilation_rate=\(o.dilation) (TensorFlow's CPU kernels cannot run it, so there is no reference to hold it to)")
    }
    let input = try spatialInput(ctx)
    var outputPadding: [Int]?
    if let p = ctx.value("output_padding") {
        if let i = p.int {
            outputPadding = [i, i]
        } else if let a = p.array, a.count == 2, let y = a[0].int, let x = a[1].int {
            outputPadding = [y, x]
        } else {
            throw ctx.invalid("'output_padding' is not an int or a pair of ints: \(p.compact)")
        }
        for (axis, v) in outputPadding!.enumerated() where v < 0 || (v >= o.strides[axis] && v != 0) {
            throw ctx.invalid("output_padding \(outputPadding!) must be smaller than the strides \(o.strides)")
        }
    }
    let v = try ctx.variables([VariableSpec(name: "kernel"), VariableSpec(name: "bias", present: o.useBias)])
    let kernel = v["kernel"]!
    let cin = input[2] > 0 ? input[2] : (kernel.rank == 4 ? kernel.shape[3] : -1)
    try ctx.checkShape(kernel, "kernel", o.kernelSize + [filters, cin])
    if let b = v["bias"] { try ctx.checkShape(b, "bias", [filters]) }
    let op = Conv2DTranspose(
        name: ctx.nodeName, kernel: kernel, bias: v["bias"], strides: o.strides, padding: o.padding,
        outputPadding: outputPadding, dilation: o.dilation)
    return ctx.withActivation(op, o.activation)
}

private func buildExtremum(_ ctx: LayerContext, largest: Bool) throws -> BuiltLayer {
    guard ctx.inputShapes.count >= 2 else { throw ctx.invalid("needs at least 2 inputs, got \(ctx.inputShapes.count)") }
    try ctx.expectNoVariables()
    return BuiltLayer([Extremum(name: ctx.nodeName, largest: largest)])
}

private func buildAverage(_ ctx: LayerContext) throws -> BuiltLayer {
    let n = ctx.inputShapes.count
    guard n >= 2 else { throw ctx.invalid("needs at least 2 inputs, got \(n)") }
    try ctx.expectNoVariables()
    return BuiltLayer([Add(name: ctx.nodeName, coefficients: Array(repeating: 1 / Float(n), count: n), kind: "Average")])
}

private func buildSubtract(_ ctx: LayerContext) throws -> BuiltLayer {
    guard ctx.inputShapes.count == 2 else { throw ctx.invalid("takes exactly 2 inputs, got \(ctx.inputShapes.count)") }
    try ctx.expectNoVariables()
    return BuiltLayer([Add(name: ctx.nodeName, coefficients: [1, -1], kind: "Subtract")])
}

/// A Conv2D whose groups are neither 1 nor one per input channel.
func buildGroupedConv2D(_ ctx: LayerContext, groups: Int, filters: Int, inputChannels cin: Int) throws -> BuiltLayer {
    let o = try ConvolutionOptions(ctx)
    let v = try ctx.variables([VariableSpec(name: "kernel"), VariableSpec(name: "bias", present: o.useBias)])
    let kernel = v["kernel"]!
    try ctx.checkShape(kernel, "kernel", o.kernelSize + [cin / groups, filters])
    if let b = v["bias"] { try ctx.checkShape(b, "bias", [filters]) }
    let op = GroupedConv2D(
        name: ctx.nodeName, kernel: kernel, bias: v["bias"], groups: groups, strides: o.strides, padding: o.padding,
        dilation: o.dilation)
    return ctx.withActivation(op, o.activation)
}

/// The normalised axis must be the channels (last) axis.
private func requireChannelAxis(_ ctx: LayerContext) throws {
    let rank = try ctx.singleInputShape().count + 1
    guard let a = ctx.value("axis") else { return }
    let axis = a.int ?? a.array.flatMap { $0.count == 1 ? $0[0].int : nil }
    guard let axis, axis == -1 || axis == rank - 1 else { throw ctx.unsupported("axis=\(a.compact) (only the last axis)") }
}

private func buildGroupNormalization(_ ctx: LayerContext) throws -> BuiltLayer {
    try requireChannelAxis(ctx)
    let groups = try ctx.int("groups", default: 32)
    let c = try ctx.singleInputShape().last ?? -1
    guard groups > 0, c == -1 || c % groups == 0 else { throw ctx.invalid("groups=\(groups) does not divide the \(c) channels") }
    let center = try ctx.bool("center", default: true)
    let scale = try ctx.bool("scale", default: true)
    let v = try ctx.variables([VariableSpec(name: "gamma", present: scale), VariableSpec(name: "beta", present: center)])
    for key in ["gamma", "beta"] { if let t = v[key], c != -1 { try ctx.checkShape(t, key, [c]) } }
    return BuiltLayer([
        GroupNormalization(
            name: ctx.nodeName, groups: groups, gamma: v["gamma"], beta: v["beta"], epsilon: try ctx.float("epsilon", default: 1e-3))
    ])
}

private func buildUnitNormalization(_ ctx: LayerContext) throws -> BuiltLayer {
    try requireChannelAxis(ctx)
    try ctx.expectNoVariables()
    return BuiltLayer([RootMeanSquareScaling.unitNormalization(name: ctx.nodeName)])
}

private func buildRMSNormalization(_ ctx: LayerContext) throws -> BuiltLayer {
    try requireChannelAxis(ctx)
    let c = try ctx.singleInputShape().last ?? -1
    let v = try ctx.variables([VariableSpec(name: "scale", anyNameWhenAlone: true)])
    if c != -1 { try ctx.checkShape(v["scale"]!, "scale", [c]) }
    return BuiltLayer([
        RootMeanSquareScaling(
            name: ctx.nodeName, kind: "RMSNormalization", scale: v["scale"], meanOverChannels: true,
            epsilon: try ctx.float("epsilon", default: 1e-6))
    ])
}

private func buildAdaptivePooling(_ ctx: LayerContext, max: Bool) throws -> BuiltLayer {
    try ctx.requireChannelsLast()
    _ = try spatialInput(ctx)
    let size = try ctx.pair("output_size")
    guard size.allSatisfy({ $0 <= 1 << 12 }) else { throw ctx.invalid("output_size \(size) is larger than 4096") }
    try ctx.expectNoVariables()
    return BuiltLayer([AdaptivePooling2D(name: ctx.nodeName, max: max, outputSize: size)])
}

private func buildPermute(_ ctx: LayerContext) throws -> BuiltLayer {
    _ = try spatialInput(ctx)
    let dims = ctx.value("dims")?.array?.compactMap(\.int) ?? []
    try ctx.expectNoVariables()
    switch dims {
    case [1, 2, 3]: return BuiltLayer([Identity(name: ctx.nodeName, kind: ctx.className)])
    case [2, 1, 3]: return BuiltLayer([SwapSpatialAxes(name: ctx.nodeName)])
    default:
        throw ctx.unsupported("dims=\(dims) (only (2, 1, 3), which swaps rows and columns and keeps the channels last)")
    }
}
