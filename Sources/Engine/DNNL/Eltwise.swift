import CDNNL

/// An element-wise function forward on oneDNN (its vectorised exp/tanh), over
/// a flat array. Used for sigmoid and tanh, whose backward passes are cheap
/// closed forms of the output that the layers compute themselves, and for
/// swish, whose backward reuses the vectorised sigmoid.
final class DNNLEltwise: Sendable {
    private let algorithm: dnnl_alg_kind_t
    private let alpha: Float
    private let beta: Float
    private let plans = PlanCache<Int, DNNLPrimitive>()

    init(algorithm: dnnl_alg_kind_t, alpha: Float = 0, beta: Float = 0) {
        self.algorithm = algorithm
        self.alpha = alpha
        self.beta = beta
    }

    static var logistic: DNNLEltwise { DNNLEltwise(algorithm: dnnl_eltwise_logistic) }
    /// x · σ(αx) with α = 1: swish / silu.
    static var swish: DNNLEltwise { DNNLEltwise(algorithm: dnnl_eltwise_swish, alpha: 1) }
    static var tanh: DNNLEltwise { DNNLEltwise(algorithm: dnnl_eltwise_tanh) }
    /// x · relu6(x + 3) / 6 (oneDNN 2.x ignores alpha and beta for it).
    static var hardSwish: DNNLEltwise { DNNLEltwise(algorithm: dnnl_eltwise_hardswish) }

    func forward(_ x: [Float]) throws -> [Float] {
        let n = x.count
        if n == 0 { return [] }
        let primitive = try plans.plan(for: n) {
            var md = try MD.tag([n], dnnl_a)
            var d = dnnl_eltwise_desc_t()
            try check(
                dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, algorithm, &md, alpha, beta),
                "dnnl_eltwise_forward_desc_init")
            let pd = try withUnsafePointer(to: &d) {
                try DNNLPrimitiveDesc(opDesc: $0, call: "dnnl_primitive_desc_create(eltwise forward)")
            }
            return try DNNLPrimitive(pd)
        }
        let out = try x.withUnsafeBufferPointer { xs in
            try uninitializedFloats(n) { os in
                let stream = try DNNLStream()
                let md = try MD.tag([n], dnnl_a)
                try primitive.execute(
                    [
                        (DNNL_ARG_SRC, DNNLMemory(md, reading: xs)),
                        (DNNL_ARG_DST, DNNLMemory(md, writing: os)),
                    ], on: stream)
            }
        }
        return out
    }
}
