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
    let convolution: CheckedConvolution

    public init(name: String, kernel: Tensor, bias: Tensor?, strides: [Int], padding: Padding, dilation: [Int]) {
        self.name = name
        self.kernel = kernel
        self.bias = bias
        self.strides = strides
        self.padding = padding
        self.dilation = dilation
        convolution = CheckedConvolution(
            kernel: kernel, bias: bias, strides: strides, padding: padding,
            dilation: dilation, depthwise: true)
    }

    public var parameterCount: Int { kernel.count + (bias?.count ?? 0) }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        try convolvedShape(inputShapes, conv: validConv(convolution))
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        try convolve(inputs, conv: validConv(convolution))
    }

    // MARK: backward to the input

    /// dL/dx per channel: the transposed depthwise convolution of dL/dy
    /// (oneDNN grouped backward-data); the bias has no effect on it.
    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        try convolveBackward(inputs, outputGradient: outputGradient, conv: validConv(convolution))
    }
}
