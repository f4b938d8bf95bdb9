import CDNNL
import Synchronization

/// A 2-D convolution (plain, or grouped: depthwise is groups = input channels)
/// on oneDNN, with NHWC tensors on both sides and TensorFlow's padding.
///
/// oneDNN picks its own (blocked) layouts for source, weights and destination
/// (`dnnl_format_tag_any`); the NHWC input is reordered in and the result back
/// out to NHWC. Measured on this machine that costs ~3% against keeping blocked
/// layouts between layers and lets every other layer stay a plain NHWC loop.
/// Weights are reordered once per layout a primitive asks for and cached.
final class DNNLConvolution: Sendable {
    let kh: Int, kw: Int, cin: Int, cout: Int, groups: Int
    let strides: [Int]  // [sh, sw]
    let dilation: [Int]  // Keras dilation_rate [dh, dw] (1 = none)
    let padding: Padding
    /// Applied to the forward result inside the primitive (an inference plan's
    /// fused residual add and activation); such a convolution has no backward pass.
    let postOps: [PostOp]
    /// Zeros around the input before the convolution's own padding (an
    /// inference plan's folded ZeroPadding2D): top, bottom, left, right.
    let inputPadding: [Int]
    /// oneDNN logical weight dims ([o, i, kh, kw] or [g, o/g, i/g, kh, kw])
    /// and the element strides that describe the Keras kernel in that order.
    private let weightDims: [Int]
    private let weightStrides: [Int]
    private let kernel: [Float]

    /// Plans per input shape and numerics: a Winograd plan must never answer an exact request.
    private let forwardPlans = PlanCache<PlanKey, ForwardPlan>()
    private let backwardPlans = PlanCache<PlanKey, BackwardPlan>()
    /// The kernel and bias in the layouts primitives ask for (reordered once each).
    private let weightLayouts: ReorderedConstants
    private let biasLayouts: ReorderedConstants?
    /// Convolutions restricted to a few output channels (backward from a sparse gradient).
    private let subConvolutions = Mutex<[(channels: [Int], conv: DNNLConvolution)]>([])

    struct Geometry: Sendable {
        let n: Int, h: Int, w: Int, oh: Int, ow: Int
        let padTop: Int, padBottom: Int, padLeft: Int, padRight: Int
    }

    private struct PlanKey: Hashable, Sendable {
        let shape: [Int]
        let numerics: Numerics
    }

    private struct ForwardPlan: Sendable {
        let geometry: Geometry
        let primitive: DNNLPrimitive
        /// oneDNN's name for the kernel it chose (`jit_wino_4x3:avx512_core`, `brgconv:avx512_core`, …).
        let implementation: String
        let src: LayoutBridge
        let dst: LayoutBridge
        /// With a `sum` post-op: the residual into the primitive's destination layout.
        let residual: LayoutBridge?
        let weights: DNNLMemory
        let bias: DNNLMemory?
    }

    private struct BackwardPlan: Sendable {
        let geometry: Geometry
        /// A forward convolution of the output gradient with the flipped kernel
        /// (see `makeFlippedBackwardPlan`) rather than a backward-data primitive.
        var asForward = false
        let primitive: DNNLPrimitive
        let implementation: String
        let diffDst: LayoutBridge
        let diffSrc: LayoutBridge
        let weights: DNNLMemory
    }

    /// - Parameters:
    ///   - kernel: Keras layout, `[kh, kw, cin, cout]` for a plain convolution or
    ///     `[kh, kw, cin, multiplier]` for a depthwise one (`depthwise: true`).
    ///   - postOps: what the forward primitive does to its result (`.sum`: see `forward(_:addingTo:)`).
    ///   - inputPadding: zeros added around the input first (top, bottom, left, right).
    init(
        kernel: Tensor, bias: Tensor?, strides: [Int], dilation: [Int], padding: Padding, depthwise: Bool,
        postOps: [PostOp] = [], inputPadding: [Int] = [0, 0, 0, 0]
    ) {
        let s = kernel.shape
        self.postOps = postOps
        self.inputPadding = inputPadding
        kh = s[0]
        kw = s[1]
        cin = s[2]
        self.strides = strides
        self.dilation = dilation
        self.padding = padding
        self.kernel = kernel.scalars
        if depthwise {
            let m = s[3]
            cout = cin * m
            groups = cin
            // Keras element (h, w, c, m) sits at ((h*kw + w)*cin + c)*m + m.
            // oneDNN dims [g = c, o = m, i = 1, h, w].
            weightDims = [cin, m, 1, kh, kw]
            weightStrides = [m, 1, cin * m, kw * cin * m, cin * m]
        } else {
            cout = s[3]
            groups = 1
            // Keras element (h, w, i, o) sits at ((h*kw + w)*cin + i)*cout + o.
            weightDims = [cout, cin, kh, kw]
            weightStrides = [1, cout, kw * cin * cout, cin * cout]
        }
        weightLayouts = ReorderedConstants(kernel.scalars, dims: weightDims, strides: weightStrides)
        biasLayouts = bias.map { ReorderedConstants($0.scalars, dims: [$0.count], strides: [1]) }
    }

    /// Output geometry for an NHWC input shape; nil when the window does not fit.
    func geometry(_ shape: [Int]) -> Geometry? {
        let (t, b, l, r) = (inputPadding[0], inputPadding[1], inputPadding[2], inputPadding[3])
        let y = padding.outputSizeAndPadding(input: shape[1] + t + b, kernel: kh, stride: strides[0], dilation: dilation[0])
        let x = padding.outputSizeAndPadding(input: shape[2] + l + r, kernel: kw, stride: strides[1], dilation: dilation[1])
        guard y.size > 0, x.size > 0 else { return nil }
        return Geometry(
            n: shape[0], h: shape[1], w: shape[2], oh: y.size, ow: x.size,
            padTop: y.before + t, padBottom: y.after + b, padLeft: x.before + l, padRight: x.after + r)
    }

    // MARK: forward

    /// `x` is NHWC with `cin` channels and a geometry that fits (the layer checks).
    func forward(_ x: Tensor) throws -> Tensor {
        let plan = try forwardPlan(x.shape)
        if plan.residual != nil { throw EngineError.invalidRequest("a convolution with a sum post-op needs its residual") }
        let g = plan.geometry
        let out = try x.scalars.withUnsafeBufferPointer { xs in
            try uninitializedFloats(g.n * g.oh * g.ow * cout) { os in
                let stream = try DNNLStream()
                let src = try plan.src.input(xs, stream: stream)
                let dst = try plan.dst.output(os, stream: stream)
                var args: [(Int32, DNNLMemory)] = [
                    (DNNL_ARG_SRC, src), (DNNL_ARG_WEIGHTS, plan.weights),
                    (DNNL_ARG_DST, dst.memory),
                ]
                if let b = plan.bias { args.append((DNNL_ARG_BIAS, b)) }
                try plan.primitive.execute(args, on: stream)
                try dst.finish()
            }
        }
        return Tensor(shape: [g.n, g.oh, g.ow, cout], scalars: out)
    }

    /// The forward pass of a convolution whose post-ops include `.sum`: the
    /// result is added to `residual` (NHWC, the output's shape) inside the
    /// primitive, in place — one pass where convolution + Add take two, and no
    /// new buffer when the caller held the only reference to the residual.
    func forward(_ x: Tensor, addingTo residual: inout Tensor) throws {
        let plan = try forwardPlan(x.shape)
        guard let bridge = plan.residual else { throw EngineError.invalidRequest("convolution has no sum post-op") }
        try x.scalars.withUnsafeBufferPointer { xs in
            try residual.scalars.withUnsafeMutableBufferPointer { rs in
                let stream = try DNNLStream()
                let src = try plan.src.input(xs, stream: stream)
                // The residual's own buffer when the layouts agree, else a reordered copy.
                let dst = try bridge.input(UnsafeBufferPointer(rs), stream: stream)
                var args: [(Int32, DNNLMemory)] = [(DNNL_ARG_SRC, src), (DNNL_ARG_WEIGHTS, plan.weights), (DNNL_ARG_DST, dst)]
                if let b = plan.bias { args.append((DNNL_ARG_BIAS, b)) }
                try plan.primitive.execute(args, on: stream)
                if let back = plan.dst.reorder {
                    try back.execute([(DNNL_ARG_FROM, dst), (DNNL_ARG_TO, DNNLMemory(plan.dst.user, writing: rs))], on: stream)
                }
            }
        }
    }

    // MARK: backward to the input

    /// Gradient w.r.t. the NHWC input of shape `inputShape`, given the gradient
    /// w.r.t. the output (NHWC). Bias does not enter the input gradient.
    func backwardData(_ gradOut: Tensor, inputShape: [Int]) throws -> Tensor {
        if !postOps.isEmpty || inputPadding != [0, 0, 0, 0] {
            throw EngineError.invalidRequest("a convolution fused for inference has no backward pass")
        }
        if groups == 1, cout >= 8, let active = activeChannels(gradOut) {
            return try backwardDataOnChannels(active, gradOut, inputShape: inputShape)
        }
        let plan = try backwardPlan(inputShape)
        let g = plan.geometry
        let out = try gradOut.scalars.withUnsafeBufferPointer { gs in
            try uninitializedFloats(g.n * g.h * g.w * cin) { os in
                let stream = try DNNLStream()
                let diffDst = try plan.diffDst.input(gs, stream: stream)
                let diffSrc = try plan.diffSrc.output(os, stream: stream)
                try plan.primitive.execute(
                    [
                        (plan.asForward ? DNNL_ARG_SRC : DNNL_ARG_DIFF_DST, diffDst),
                        (DNNL_ARG_WEIGHTS, plan.weights),
                        (plan.asForward ? DNNL_ARG_DST : DNNL_ARG_DIFF_SRC, diffSrc.memory),
                    ],
                    on: stream)
                try diffSrc.finish()
            }
        }
        return Tensor(shape: inputShape, scalars: out)
    }

    // MARK: backward from a few output channels

    /// The output channels whose gradient is non-zero anywhere in the batch,
    /// when they are at most a quarter of all (else nil). Feature visualisation
    /// seeds one channel per image at the target layer (an ascent step on a
    /// filter grid: image n ↦ channel n), and the ReLU in between keeps that
    /// sparsity, so the first backward convolution would otherwise spend all of
    /// its work multiplying zeros (VGG16 block3_conv1 at batch 16: 136 ms of a
    /// ~1.8 s step). A gradient that is dense gives up after its first pixels.
    private func activeChannels(_ gradOut: Tensor) -> [Int]? {
        let pixels = gradOut.count / cout
        guard pixels > 0 else { return nil }
        var seen = [UInt32](repeating: 0, count: cout)
        let limit = cout / 4
        return gradOut.scalars.withUnsafeBufferPointer { gb in
            gb.withMemoryRebound(to: UInt32.self) { bits in
                seen.withUnsafeMutableBufferPointer { acc in
                    var p = 0
                    while p < pixels {
                        // OR of the magnitudes' bit patterns (−0 counts as 0, NaN as non-zero);
                        // a branch-free loop over 64 pixels at a time, then a count.
                        let end = min(pixels, p + 64)
                        while p < end {
                            let row = p * cout
                            for c in 0..<cout { acc[c] |= bits[row + c] & 0x7fff_ffff }
                            p += 1
                        }
                        var active = 0
                        for c in 0..<cout where acc[c] != 0 { active += 1 }
                        if active > limit { return nil }
                    }
                    return (0..<cout).filter { acc[$0] != 0 }
                }
            }
        }
    }

    /// Backward-data restricted to output channels `active` (all others have a
    /// zero gradient): the same sums without their zero terms, on a convolution
    /// with just those output channels (cached per channel set: a visualisation
    /// runs many steps with the same one).
    private func backwardDataOnChannels(_ active: [Int], _ gradOut: Tensor, inputShape: [Int]) throws -> Tensor {
        if active.isEmpty { return Tensor(zeros: inputShape) }
        let k = active.count
        let sub = try subConvolution(active)
        let pixels = gradOut.count / cout
        let compact = gradOut.scalars.withUnsafeBufferPointer { gs in
            uninitializedFloats(pixels * k) { d in
                for p in 0..<pixels {
                    for (j, c) in active.enumerated() { d[p * k + j] = gs[p * cout + c] }
                }
            }
        }
        var shape = gradOut.shape
        shape[3] = k
        return try sub.backwardData(Tensor(shape: shape, scalars: compact), inputShape: inputShape)
    }

    private func subConvolution(_ active: [Int]) throws -> DNNLConvolution {
        try subConvolutions.withLock { cache in
            if let i = cache.firstIndex(where: { $0.channels == active }) {
                let hit = cache.remove(at: i)
                cache.append(hit)
                return hit.conv
            }
            let k = active.count
            var w = [Float](repeating: 0, count: kh * kw * cin * k)
            for t in 0..<(kh * kw * cin) {
                for (j, c) in active.enumerated() { w[t * k + j] = kernel[t * cout + c] }
            }
            let conv = DNNLConvolution(
                kernel: Tensor(shape: [kh, kw, cin, k], scalars: w), bias: nil,
                strides: strides, dilation: dilation, padding: padding, depthwise: false)
            cache.append((active, conv))
            if cache.count > 4 { cache.removeFirst() }
            return conv
        }
    }

    // MARK: plans

    /// The forward plan for an NHWC input shape under the calling task's numerics.
    private func forwardPlan(_ shape: [Int]) throws -> ForwardPlan {
        let numerics = Numerics.current
        return try forwardPlans.plan(for: PlanKey(shape: shape, numerics: numerics)) {
            try makeForwardPlan(shape, numerics: numerics)
        }
    }

    private func backwardPlan(_ shape: [Int]) throws -> BackwardPlan {
        let numerics = Numerics.current
        return try backwardPlans.plan(for: PlanKey(shape: shape, numerics: numerics)) {
            try makeBackwardPlan(shape, numerics: numerics)
        }
    }

    /// The name of the kernel oneDNN runs for the forward pass at `inputShape`
    /// under the calling task's numerics (tests and diagnostics: which one ran).
    func forwardImplementation(inputShape: [Int]) throws -> String {
        try forwardPlan(inputShape).implementation
    }

    /// The same for the backward pass to the input (with a dense output gradient).
    func backwardImplementation(inputShape: [Int]) throws -> String {
        try backwardPlan(inputShape).implementation
    }

    /// Whether oneDNN can run Winograd here at all: its f32 Winograd kernels
    /// are avx512_core ones (the ISA as oneDNN sees it, so a `ONEDNN_MAX_CPU_ISA`
    /// cap counts). Elsewhere fast numerics are the direct convolution.
    static var winogradAvailable: Bool {
        let core = dnnl_cpu_isa_avx512_core.rawValue
        return dnnl_get_effective_cpu_isa().rawValue & core == core
    }

    /// Whether to ask oneDNN for Winograd on a convolution from `inputs` to
    /// `outputs` channels: its F(4×4, 3×3) kernels exist only for 3×3,
    /// stride 1, no dilation, no groups; and with an image's 3 channels on
    /// either side the transforms cost more than the multiplications they
    /// save (VGG16 block1_conv1 at batch 16 ran about twice as long).
    private func winogradFits(inputs: Int, outputs: Int) -> Bool {
        kh == 3 && kw == 3 && strides == [1, 1] && dilation == [1, 1] && groups == 1 && inputs >= 16 && outputs >= 16
    }

    private func descriptors(_ g: Geometry) throws
        -> (src: MemoryDesc, weights: MemoryDesc, dst: MemoryDesc, userSrc: MemoryDesc, userDst: MemoryDesc)
    {
        (
            try MD.tag([g.n, cin, g.h, g.w], dnnl_format_tag_any),
            try MD.tag(weightDims, dnnl_format_tag_any),
            try MD.tag([g.n, cout, g.oh, g.ow], dnnl_format_tag_any),
            try MD.tag([g.n, cin, g.h, g.w], dnnl_nhwc),
            try MD.tag([g.n, cout, g.oh, g.ow], dnnl_nhwc)
        )
    }

    private func forwardDesc(
        _ g: Geometry, prop: dnnl_prop_kind_t, withBias: Bool, algorithm: dnnl_alg_kind_t = dnnl_convolution_direct
    ) throws -> DNNLPrimitiveDesc {
        let d = try descriptors(g)
        var src = d.src
        var wei = d.weights
        var dst = d.dst
        var bia = try MD.tag([cout], dnnl_a)
        var cd = dnnl_convolution_desc_t()
        let st = strides.map(Int64.init)
        let dl = dilation.map { Int64($0 - 1) }  // oneDNN counts the gaps
        let pl = [Int64(g.padTop), Int64(g.padLeft)]
        let pr = [Int64(g.padBottom), Int64(g.padRight)]
        if withBias {
            try check(
                dnnl_dilated_convolution_forward_desc_init(
                    &cd, prop, algorithm, &src, &wei, &bia,
                    &dst, st, dl, pl, pr),
                "dnnl_dilated_convolution_forward_desc_init")
        } else {
            try check(
                dnnl_dilated_convolution_forward_desc_init(
                    &cd, prop, algorithm, &src, &wei, nil,
                    &dst, st, dl, pl, pr),
                "dnnl_dilated_convolution_forward_desc_init")
        }
        // Only the inference primitive carries the activation; a training
        // forward is only ever the hint for backward-data.
        let postOps = prop == dnnl_forward_inference ? self.postOps : []
        return try withUnsafePointer(to: &cd) {
            try DNNLPrimitiveDesc(opDesc: $0, postOps: postOps, call: "dnnl_primitive_desc_create(convolution forward)")
        }
    }

    private func makeForwardPlan(_ shape: [Int], numerics: Numerics) throws -> ForwardPlan {
        guard let g = geometry(shape) else { throw EngineError.invalidRequest("convolution window does not fit \(shape)") }
        let withBias = biasLayouts != nil
        // Winograd when asked for and fitting; oneDNN refuses it (no primitive
        // descriptor) on CPUs without avx512_core and for shapes or post-ops
        // its kernels lack, and then this is the direct convolution.
        let winograd =
            numerics == .fast && winogradFits(inputs: cin, outputs: cout)
            ? try? forwardDesc(g, prop: dnnl_forward_inference, withBias: withBias, algorithm: dnnl_convolution_winograd)
            : nil
        let pd = try winograd ?? forwardDesc(g, prop: dnnl_forward_inference, withBias: withBias)
        let d = try descriptors(g)
        return ForwardPlan(
            geometry: g,
            primitive: try DNNLPrimitive(pd),
            implementation: pd.implementation,
            src: try LayoutBridge(input: d.userSrc, primitive: pd.md(dnnl_query_src_md)),
            dst: try LayoutBridge(output: d.userDst, primitive: pd.md(dnnl_query_dst_md)),
            residual: postOps.contains(.sum) ? try LayoutBridge(input: d.userDst, primitive: pd.md(dnnl_query_dst_md)) : nil,
            weights: try weights(in: pd.md(dnnl_query_weights_md)),
            bias: try biasMem())
    }

    private func makeBackwardPlan(_ shape: [Int], numerics: Numerics) throws -> BackwardPlan {
        guard let g = geometry(shape) else { throw EngineError.invalidRequest("convolution window does not fit \(shape)") }
        if numerics == .fast, winogradFits(inputs: cout, outputs: cin) {
            if let plan = try? makeFlippedBackwardPlan(g, winograd: true) { return plan }
            // The flipped problem pads by k − 1 − pad (2 for 'valid'), more than
            // oneDNN's Winograd takes; its backward-data Winograd kernel takes
            // the convolution's own padding.
            if let plan = try? makeBackwardDataPlan(g, algorithm: dnnl_convolution_winograd) { return plan }
        }
        if groups == 1, strides == [1, 1], dilation == [1, 1], let plan = try? makeFlippedBackwardPlan(g, winograd: false) {
            return plan
        }
        return try makeBackwardDataPlan(g, algorithm: dnnl_convolution_direct)
    }

    /// A backward-data primitive of `algorithm`.
    private func makeBackwardDataPlan(_ g: Geometry, algorithm: dnnl_alg_kind_t) throws -> BackwardPlan {
        // Backward-data needs the forward descriptor (of a training forward) as a hint.
        let hint = try forwardDesc(g, prop: dnnl_forward_training, withBias: false, algorithm: algorithm)
        let d = try descriptors(g)
        // Ask for NHWC diff_src/diff_dst directly first, kept only if a jit
        // kernel takes it; otherwise 'any' plus reorders. oneDNN's jit
        // backward-data kernels read and write NHWC at the speed of their
        // blocked layout, and the two reorders around a blocked run are pure
        // memory traffic: depthwise (112×112×96 stride 2) was ~3× slower with
        // 'any' + reorders; on VGG16's ascent step at batch 16 the reorders
        // took ~0.85 s of ~6.2 s (16×64×224×224 each way: ~145 ms apiece),
        // while the NHWC kernel ran as fast as the blocked one.
        var pd = try? backwardDesc(g, hint: hint, diffSrc: d.userSrc, weights: d.weights, diffDst: d.userDst, algorithm: algorithm)
        if let candidate = pd, !(candidate.implementation.hasPrefix("jit") || candidate.implementation.hasPrefix("brg")) { pd = nil }
        let chosen = try pd ?? backwardDesc(g, hint: hint, diffSrc: d.src, weights: d.weights, diffDst: d.dst, algorithm: algorithm)
        return BackwardPlan(
            geometry: g,
            primitive: try DNNLPrimitive(chosen),
            implementation: chosen.implementation,
            diffDst: try LayoutBridge(input: d.userDst, primitive: chosen.md(dnnl_query_diff_dst_md)),
            diffSrc: try LayoutBridge(output: d.userSrc, primitive: chosen.md(dnnl_query_diff_src_md)),
            weights: try weights(in: chosen.md(dnnl_query_weights_md)))
    }

    /// Backward-data of a stride-1 convolution as a forward convolution: dx is
    /// dy convolved with the kernel flipped in space and with its channel axes
    /// swapped, padded by (k − 1 − pad) on each side — the same sums, run on
    /// oneDNN 2.6's forward brgemm kernel instead of its older jit
    /// backward-data kernel.
    /// - Few input channels (an image's first layer, cin = 3): backward-data
    ///   pads the 3 input-gradient channels to a block of 16 and ran VGG16
    ///   block1_conv1 (0.17 GFLOP) in 18 ms at batch 1, 225 ms at batch 16;
    ///   flipped: 4.5 and 73 ms (ONEDNN_VERBOSE).
    /// - Wide layers: per primitive about even, but the ascent step at batch 16
    ///   measured 1752/1702 → 1685/1682 ms (A/B twice, quiet machine).
    ///
    /// With `winograd` the flipped problem asks for oneDNN's Winograd kernel,
    /// which reads and writes only its own blocked layouts (so source and
    /// destination are `any`, with reorders from and to NHWC); it throws when
    /// oneDNN has none for it.
    private func makeFlippedBackwardPlan(_ g: Geometry, winograd: Bool) throws -> BackwardPlan {
        let pt = kh - 1 - g.padTop
        let pb = kh - 1 - g.padBottom
        let pl = kw - 1 - g.padLeft
        let pr = kw - 1 - g.padRight
        guard pt >= 0, pb >= 0, pl >= 0, pr >= 0 else { throw EngineError.invalidRequest("padding wider than the kernel") }
        let userSrc = try MD.tag([g.n, cout, g.oh, g.ow], dnnl_nhwc)
        let userDst = try MD.tag([g.n, cin, g.h, g.w], dnnl_nhwc)
        let layout = winograd ? dnnl_format_tag_any : dnnl_nhwc
        var src = try MD.tag([g.n, cout, g.oh, g.ow], layout)
        var wei = try MD.tag([cin, cout, kh, kw], dnnl_format_tag_any)
        var dst = try MD.tag([g.n, cin, g.h, g.w], layout)
        var cd = dnnl_convolution_desc_t()
        try check(
            dnnl_dilated_convolution_forward_desc_init(
                &cd, dnnl_forward_inference, winograd ? dnnl_convolution_winograd : dnnl_convolution_direct,
                &src, &wei, nil, &dst, [1, 1], [0, 0],
                [Int64(pt), Int64(pl)], [Int64(pb), Int64(pr)]),
            "dnnl_dilated_convolution_forward_desc_init (flipped backward)")
        let pd = try withUnsafePointer(to: &cd) {
            try DNNLPrimitiveDesc(opDesc: $0, call: "dnnl_primitive_desc_create(convolution backward as forward)")
        }
        guard winograd || pd.implementation.hasPrefix("brg") || pd.implementation.hasPrefix("jit") else {
            throw EngineError.invalidRequest("no fast flipped kernel")
        }
        // Flipped kernel, stored [ky][kx][co][ci] (HWIO of the flipped problem:
        // its inputs are our outputs): element (ky, kx, co, ci) = K[kh−1−ky][kw−1−kx][ci][co].
        var flipped = [Float](repeating: 0, count: kernel.count)
        for ky in 0..<kh {
            for kx in 0..<kw {
                for ci in 0..<cin {
                    for co in 0..<cout {
                        flipped[((ky * kw + kx) * cout + co) * cin + ci] =
                            kernel[(((kh - 1 - ky) * kw + (kw - 1 - kx)) * cin + ci) * cout + co]
                    }
                }
            }
        }
        let plain = try MD.strided([cin, cout, kh, kw], strides: [1, cin, kw * cout * cin, cout * cin])
        let weights = try DNNLMemory.reordered(flipped, plain: plain, to: pd.md(dnnl_query_weights_md))
        return BackwardPlan(
            geometry: g, asForward: true,
            primitive: try DNNLPrimitive(pd),
            implementation: pd.implementation,
            diffDst: try LayoutBridge(input: userSrc, primitive: pd.md(dnnl_query_src_md)),
            diffSrc: try LayoutBridge(output: userDst, primitive: pd.md(dnnl_query_dst_md)),
            weights: weights)
    }

    private func backwardDesc(
        _ g: Geometry, hint: DNNLPrimitiveDesc, diffSrc: MemoryDesc, weights: MemoryDesc,
        diffDst: MemoryDesc, algorithm: dnnl_alg_kind_t
    ) throws -> DNNLPrimitiveDesc {
        var diffSrc = diffSrc
        var wei = weights
        var diffDst = diffDst
        var cd = dnnl_convolution_desc_t()
        let st = strides.map(Int64.init)
        let dl = dilation.map { Int64($0 - 1) }
        let pl = [Int64(g.padTop), Int64(g.padLeft)]
        let pr = [Int64(g.padBottom), Int64(g.padRight)]
        try check(
            dnnl_dilated_convolution_backward_data_desc_init(
                &cd, algorithm, &diffSrc, &wei,
                &diffDst, st, dl, pl, pr),
            "dnnl_dilated_convolution_backward_data_desc_init")
        return try withUnsafePointer(to: &cd) {
            try DNNLPrimitiveDesc(opDesc: $0, hint: hint, call: "dnnl_primitive_desc_create(convolution backward data)")
        }
    }

    /// The kernel in layout `md`, reordered on first request and cached.
    private func weights(in md: MemoryDesc) throws -> DNNLMemory {
        try weightLayouts.memory(in: md)
    }

    private func biasMem() throws -> DNNLMemory? {
        try biasLayouts?.memory(in: MD.tag([cout], dnnl_a))
    }
}
