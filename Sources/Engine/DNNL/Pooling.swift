import CDNNL

/// 2-D max or average pooling forward on oneDNN, NHWC in and out (oneDNN has
/// direct NHWC pooling kernels, so no reorders), TensorFlow's padding.
///
/// Average pooling excludes padded cells from the count (TF/Keras 'same');
/// max pooling never selects a padded cell. With 'valid' there is no padding,
/// so the two average variants agree.
final class DNNLPooling: Sendable {
    enum Kind: Sendable { case max, average }

    let kind: Kind
    let pool: [Int]
    let strides: [Int]
    let padding: Padding
    private let plans = PlanCache<[Int], Plan>()

    struct Geometry: Sendable {
        let n: Int, h: Int, w: Int, c: Int, oh: Int, ow: Int
        let padTop: Int, padBottom: Int, padLeft: Int, padRight: Int
    }

    private struct Plan: Sendable {
        let geometry: Geometry
        let primitive: DNNLPrimitive
    }

    init(kind: Kind, pool: [Int], strides: [Int], padding: Padding) {
        self.kind = kind
        self.pool = pool
        self.strides = strides
        self.padding = padding
    }

    /// Output geometry for an NHWC shape; nil when the window does not fit.
    func geometry(_ shape: [Int]) -> Geometry? {
        let y = padding.outputSizeAndPadding(input: shape[1], kernel: pool[0], stride: strides[0])
        let x = padding.outputSizeAndPadding(input: shape[2], kernel: pool[1], stride: strides[1])
        guard y.size > 0, x.size > 0 else { return nil }
        return Geometry(
            n: shape[0], h: shape[1], w: shape[2], c: shape[3], oh: y.size, ow: x.size,
            padTop: y.before, padBottom: y.after, padLeft: x.before, padRight: x.after)
    }

    func forward(_ x: Tensor) throws -> Tensor {
        let plan = try plans.plan(for: x.shape) { try makePlan(x.shape) }
        let g = plan.geometry
        let out = try x.scalars.withUnsafeBufferPointer { xs in
            try uninitializedFloats(g.n * g.oh * g.ow * g.c) { os in
                let stream = try DNNLStream()
                let src = try DNNLMemory(MD.tag([g.n, g.c, g.h, g.w], dnnl_nhwc), reading: xs)
                let dst = try DNNLMemory(MD.tag([g.n, g.c, g.oh, g.ow], dnnl_nhwc), writing: os)
                try plan.primitive.execute([(DNNL_ARG_SRC, src), (DNNL_ARG_DST, dst)], on: stream)
            }
        }
        return Tensor(shape: [g.n, g.oh, g.ow, g.c], scalars: out)
    }

    private func makePlan(_ shape: [Int]) throws -> Plan {
        guard let g = geometry(shape) else { throw EngineError.invalidRequest("pooling window does not fit \(shape)") }
        var src = try MD.tag([g.n, g.c, g.h, g.w], dnnl_nhwc)
        var dst = try MD.tag([g.n, g.c, g.oh, g.ow], dnnl_nhwc)
        var d = dnnl_pooling_desc_t()
        let alg = kind == .max ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding
        try check(
            dnnl_pooling_forward_desc_init(
                &d, dnnl_forward_inference, alg, &src, &dst,
                strides.map(Int64.init), pool.map(Int64.init),
                [Int64(g.padTop), Int64(g.padLeft)],
                [Int64(g.padBottom), Int64(g.padRight)]),
            "dnnl_pooling_forward_desc_init")
        let pd = try withUnsafePointer(to: &d) {
            try DNNLPrimitiveDesc(opDesc: $0, call: "dnnl_primitive_desc_create(pooling forward)")
        }
        return Plan(geometry: g, primitive: try DNNLPrimitive(pd))
    }
}
