/// Keras `Dense`: y = x·W + b on the last axis of an input of any rank
/// (`[n, h, w, c]` → `[n, h, w, out]`, treated as `[n·h·w, c]` rows), on
/// oneDNN's inner product forward and backward-data.
public final class Dense: Layer {
    public let name: String
    public var kind: String { "Dense" }
    /// Keras layout `[in, out]`.
    public let kernel: Tensor
    public let bias: Tensor?
    private let invalid: String?
    private let product: DNNLInnerProduct?

    public init(name: String, kernel: Tensor, bias: Tensor?) {
        self.name = name
        self.kernel = kernel
        self.bias = bias
        let s = kernel.shape
        if s.count != 2 || s.contains(where: { $0 <= 0 }) {
            invalid = "kernel must be [in, out], got \(s)"
        } else if let b = bias, b.shape != [s[1]] {
            invalid = "bias must be [\(s[1])], got \(b.shape)"
        } else {
            invalid = nil
        }
        product = invalid == nil ? DNNLInnerProduct(kernel: kernel, bias: bias) : nil
    }

    public var parameterCount: Int { kernel.count + (bias?.count ?? 0) }

    private func validProduct() throws -> DNNLInnerProduct {
        if let invalid { throw mismatch(invalid) }
        return product!
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let p = try validProduct()
        let s = try singleShape(inputShapes)
        guard let last = s.last, last == p.inputs else {
            throw mismatch("expected \(p.inputs) features on the last axis, got input \(s)")
        }
        return Array(s.dropLast()) + [p.outputs]
    }

    private func rows(_ x: Tensor, _ p: DNNLInnerProduct) throws -> Int {
        guard x.rank >= 2, x.shape.last == p.inputs else {
            throw mismatch("expected \(p.inputs) features on the last axis, got input \(x.shape)")
        }
        return x.count / p.inputs
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let p = try validProduct()
        let x = try singleInput(inputs)
        let n = try rows(x, p)
        let shape = Array(x.shape.dropLast()) + [p.outputs]
        if n == 0 { return Tensor(zeros: shape) }
        return Tensor(shape: shape, scalars: try p.forward(x.scalars, rows: n))
    }

    // MARK: backward to the input

    /// dL/dx = dL/dy · Wᵀ, row by row.
    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let p = try validProduct()
        let x = try singleInput(inputs)
        let n = try rows(x, p)
        guard outputGradient.shape == Array(x.shape.dropLast()) + [p.outputs] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        if n == 0 { return [Tensor(zeros: x.shape)] }
        return [Tensor(shape: x.shape, scalars: try p.backwardData(outputGradient.scalars, rows: n))]
    }
}
