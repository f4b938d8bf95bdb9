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
        try convolvedShape(inputShapes, conv: validConv())
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        try convolve(inputs, conv: validConv())
    }

    // MARK: backward to the input

    /// dL/dx per channel: the transposed depthwise convolution of dL/dy
    /// (oneDNN grouped backward-data); the bias has no effect on it.
    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        try convolveBackward(inputs, outputGradient: outputGradient, conv: validConv())
    }
}
