/// Keras `DepthwiseConv2D` (channels_last): each input channel c is convolved
/// with its own `multiplier` filters; output channel `c * multiplier + m`, as
/// Keras orders them. Runs on oneDNN as a grouped convolution (groups = cin),
/// forward and backward to the input.
public final class DepthwiseConv2D: Layer {
    public let name: String
    public var kind: String { "DepthwiseConv2D" }
    /// Keras layout `[kh, kw, cin, multiplier]`.
    public let kernel: Tensor
    public let bias: Tensor?
    public let strides: [Int]
    public let padding: Padding
    public let dilation: [Int]
    private let invalid: String?
    private let conv: DNNLConvolution?

    public init(name: String, kernel: Tensor, bias: Tensor?, strides: [Int], padding: Padding, dilation: [Int]) {
        self.name = name
        self.kernel = kernel
        self.bias = bias
        self.strides = strides
        self.padding = padding
        self.dilation = dilation
        let s = kernel.shape
        var problem: String?
        if s.count != 4 || s.contains(where: { $0 <= 0 }) {
            problem = "depthwise kernel must be [kh, kw, cin, multiplier], got \(s)"
        } else if let b = bias, b.shape != [s[2] * s[3]] {
            problem = "bias must be [\(s[2] * s[3])], got \(b.shape)"
        } else {
            problem = checkPair(strides, "strides") ?? checkPair(dilation, "dilation_rate")
        }
        invalid = problem
        conv = problem == nil
            ? DNNLConvolution(kernel: kernel, bias: bias, strides: strides, dilation: dilation,
                              padding: padding, depthwise: true)
            : nil
    }

    public var parameterCount: Int { kernel.count + (bias?.count ?? 0) }

    private func validConv() throws -> DNNLConvolution {
        if let invalid { throw mismatch(invalid) }
        return conv!
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let conv = try validConv()
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: conv.cin)
        var out = [-1, -1, conv.cout]
        for axis in 0..<2 where s[axis] != -1 {
            let size = padding.outputSizeAndPadding(input: s[axis], kernel: kernel.shape[axis],
                                                    stride: strides[axis], dilation: dilation[axis]).size
            guard size > 0 else { throw mismatch("input \(s) is smaller than the \(kernel.shape[0])x\(kernel.shape[1]) window") }
            out[axis] = size
        }
        return out
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let conv = try validConv()
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: conv.cin)
        guard let g = conv.geometry(x.shape) else { throw mismatch("input \(x.shape) is smaller than the window") }
        if g.n == 0 { return Tensor(zeros: [0, g.oh, g.ow, conv.cout]) }
        return try conv.forward(x)
    }

    // MARK: backward to the input

    /// dL/dx per channel: the transposed depthwise convolution of dL/dy
    /// (oneDNN grouped backward-data); the bias has no effect on it.
    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let conv = try validConv()
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: conv.cin)
        guard let g = conv.geometry(x.shape) else { throw mismatch("input \(x.shape) is smaller than the window") }
        guard outputGradient.shape == [g.n, g.oh, g.ow, conv.cout] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output \([g.n, g.oh, g.ow, conv.cout])")
        }
        if g.n == 0 { return [Tensor(zeros: x.shape)] }
        return [try conv.backwardData(outputGradient, inputShape: x.shape)]
    }
}
