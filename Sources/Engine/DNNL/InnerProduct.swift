import CDNNL
import Synchronization

/// y = x·W + b on oneDNN's inner product, for x of shape [rows, in] (row-major)
/// and a Keras kernel W of shape [in, out]. Source and destination stay plain
/// (`nc`). The weights are used in place — the Keras array itself, described
/// as `io` forward and `oi` for the transposed backward — so a dense layer holds
/// its weights once: a reordered copy per direction cost VGG16 ~1 GB (fc1 alone
/// is 411 MB) and pushed forward + backward past 2 GiB, while these products are
/// memory-bound either way. Only when oneDNN refuses the plain layout do the
/// weights go to the layout it prefers, reordered once.
final class DNNLInnerProduct: Sendable {
    let inputs: Int
    let outputs: Int
    private let kernel: [Float]

    private let forwardPlans = PlanCache<Int, Plan>()
    private let backwardPlans = PlanCache<Int, Plan>()
    /// Copies in oneDNN's preferred layouts, made only when a plain layout is refused:
    /// the kernel as logical [out, in] (forward) and [in, out] (transposed backward).
    private let weightLayouts: ReorderedConstants
    private let transposedLayouts: ReorderedConstants
    private let biasLayouts: ReorderedConstants?

    private struct Plan: Sendable {
        let primitive: DNNLPrimitive
        /// A reordered copy, or nil: the kernel array itself, described by `inPlace`.
        let weights: DNNLMemory?
        let inPlace: MemoryDesc?
        let bias: DNNLMemory?

        /// Runs with the weights argument bound to the copy or to the kernel array.
        func execute(_ args: [(Int32, DNNLMemory)], kernel: [Float], on stream: DNNLStream) throws {
            if let weights {
                try primitive.execute(args + [(DNNL_ARG_WEIGHTS, weights)], on: stream)
            } else {
                try kernel.withUnsafeBufferPointer { k in
                    let w = try DNNLMemory(inPlace!, reading: k)
                    try primitive.execute(args + [(DNNL_ARG_WEIGHTS, w)], on: stream)
                }
            }
        }
    }

    /// `kernel` is Keras' `[in, out]`.
    init(kernel: Tensor, bias: Tensor?) {
        inputs = kernel.shape[0]
        outputs = kernel.shape[1]
        self.kernel = kernel.scalars
        // Keras' [in, out] row-major array is [out, in] with strides (1, out), and [in, out] with (out, 1).
        weightLayouts = ReorderedConstants(kernel.scalars, dims: [outputs, inputs], strides: [1, outputs])
        transposedLayouts = ReorderedConstants(kernel.scalars, dims: [inputs, outputs], strides: [outputs, 1])
        biasLayouts = bias.map { ReorderedConstants($0.scalars, dims: [$0.count], strides: [1]) }
    }

    /// `x` holds `rows * inputs` scalars; returns `rows * outputs`.
    func forward(_ x: [Float], rows: Int) throws -> [Float] {
        let plan = try forwardPlans.plan(for: rows) { try makeForwardPlan(rows) }
        let out = try x.withUnsafeBufferPointer { xs in
            try uninitializedFloats(rows * outputs) { os in
                let stream = try DNNLStream()
                let src = try DNNLMemory(MD.tag([rows, inputs], dnnl_nc), reading: xs)
                let dst = try DNNLMemory(MD.tag([rows, outputs], dnnl_nc), writing: os)
                var args: [(Int32, DNNLMemory)] = [(DNNL_ARG_SRC, src), (DNNL_ARG_DST, dst)]
                if let b = plan.bias { args.append((DNNL_ARG_BIAS, b)) }
                try plan.execute(args, kernel: kernel, on: stream)
            }
        }
        return out
    }

    /// dx = dy·Wᵀ for `rows` rows of output gradient.
    func backwardData(_ gradOut: [Float], rows: Int) throws -> [Float] {
        let plan = try backwardPlans.plan(for: rows) { try makeBackwardPlan(rows) }
        let out = try gradOut.withUnsafeBufferPointer { gs in
            try uninitializedFloats(rows * inputs) { os in
                let stream = try DNNLStream()
                let diffDst = try DNNLMemory(MD.tag([rows, outputs], dnnl_nc), reading: gs)
                let diffSrc = try DNNLMemory(MD.tag([rows, inputs], dnnl_nc), writing: os)
                // (a forward primitive on the transposed problem: see makeBackwardPlan)
                try plan.execute([(DNNL_ARG_SRC, diffDst), (DNNL_ARG_DST, diffSrc)], kernel: kernel, on: stream)
            }
        }
        return out
    }

    private func forwardDesc(
        _ rows: Int, prop: dnnl_prop_kind_t, withBias: Bool,
        weightsTag: dnnl_format_tag_t = dnnl_format_tag_any
    ) throws -> DNNLPrimitiveDesc {
        var src = try MD.tag([rows, inputs], dnnl_nc)
        var wei = try MD.tag([outputs, inputs], weightsTag)
        var bia = try MD.tag([outputs], dnnl_a)
        var dst = try MD.tag([rows, outputs], dnnl_nc)
        var d = dnnl_inner_product_desc_t()
        if withBias {
            try check(
                dnnl_inner_product_forward_desc_init(&d, prop, &src, &wei, &bia, &dst),
                "dnnl_inner_product_forward_desc_init")
        } else {
            try check(
                dnnl_inner_product_forward_desc_init(&d, prop, &src, &wei, nil, &dst),
                "dnnl_inner_product_forward_desc_init")
        }
        return try withUnsafePointer(to: &d) {
            try DNNLPrimitiveDesc(opDesc: $0, call: "dnnl_primitive_desc_create(inner product forward)")
        }
    }

    private func makeForwardPlan(_ rows: Int) throws -> Plan {
        // Logical weights [out, in]; Keras' [in, out] row-major array is that matrix as `io`.
        if let pd = try? forwardDesc(rows, prop: dnnl_forward_inference, withBias: biasLayouts != nil, weightsTag: dnnl_io) {
            return Plan(
                primitive: try DNNLPrimitive(pd), weights: nil, inPlace: try MD.tag([outputs, inputs], dnnl_io),
                bias: try biasMem())
        }
        let pd = try forwardDesc(rows, prop: dnnl_forward_inference, withBias: biasLayouts != nil)
        return Plan(
            primitive: try DNNLPrimitive(pd), weights: try weights(in: pd.md(dnnl_query_weights_md)),
            inPlace: nil, bias: try biasMem())
    }

    /// Backward-data as a *forward* inner product on the transposed problem:
    /// dx[r, i] = Σ_o W[i, o]·dy[r, o] is an inner product with `outputs`
    /// input features, `inputs` output features and logical weights [i, o] —
    /// which is Keras' [in, out] row-major kernel as it is. oneDNN's
    /// backward-data kernel was ~1.5× slower than its forward one on the same
    /// sizes (VGG16 fc1 at batch 1: 64 vs 42 ms, fc2: 22 vs 14 ms; both
    /// memory-bound on the weights), and Grad-CAM runs all three.
    private func makeBackwardPlan(_ rows: Int) throws -> Plan {
        func desc(_ tag: dnnl_format_tag_t) throws -> DNNLPrimitiveDesc {
            var src = try MD.tag([rows, outputs], dnnl_nc)
            var wei = try MD.tag([inputs, outputs], tag)
            var dst = try MD.tag([rows, inputs], dnnl_nc)
            var d = dnnl_inner_product_desc_t()
            try check(
                dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &src, &wei, nil, &dst),
                "dnnl_inner_product_forward_desc_init (transposed)")
            return try withUnsafePointer(to: &d) {
                try DNNLPrimitiveDesc(opDesc: $0, call: "dnnl_primitive_desc_create(inner product backward data as forward)")
            }
        }
        // Logical weights [in, out]: Keras' row-major array as it is (`oi`).
        if let pd = try? desc(dnnl_oi) {
            return Plan(primitive: try DNNLPrimitive(pd), weights: nil, inPlace: try MD.tag([inputs, outputs], dnnl_oi), bias: nil)
        }
        let pd = try desc(dnnl_format_tag_any)
        return Plan(
            primitive: try DNNLPrimitive(pd), weights: try transposedWeights(in: pd.md(dnnl_query_weights_md)),
            inPlace: nil, bias: nil)
    }

    /// The kernel as the logical [in, out] weights of the transposed product, in layout `md`.
    private func transposedWeights(in md: MemoryDesc) throws -> DNNLMemory {
        try transposedLayouts.memory(in: md)
    }

    private func weights(in md: MemoryDesc) throws -> DNNLMemory {
        try weightLayouts.memory(in: md)
    }

    private func biasMem() throws -> DNNLMemory? {
        try biasLayouts?.memory(in: MD.tag([outputs], dnnl_a))
    }
}
