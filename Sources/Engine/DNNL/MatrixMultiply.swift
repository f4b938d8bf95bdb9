import CDNNL

/// c[m×n] = alpha · a[m×k] · b[k×n] + beta · c, row-major, on oneDNN's sgemm
/// (vectorised, over the compute threads). For the dense matrix products
/// outside a network's layers, such as the lucid image's Fourier transform.
public func matrixMultiply(
    _ m: Int, _ n: Int, _ k: Int, alpha: Float, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
    beta: Float, _ c: UnsafeMutablePointer<Float>
) {
    let status = dnnl_sgemm(
        CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "N")), dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k), alpha, a,
        dnnl_dim_t(k), b, dnnl_dim_t(n), beta, c, dnnl_dim_t(n))
    // It fails only on arguments no caller passes (negative sizes, short leading dimensions).
    precondition(status == dnnl_success, "dnnl_sgemm(\(m), \(n), \(k)) returned \(status)")
}
