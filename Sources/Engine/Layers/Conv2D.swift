/// Keras `Conv2D` (channels_last), forward and backward to the input on oneDNN.
///
/// Padding follows TensorFlow ('same' may pad one more cell after than before).
/// Any fused Keras activation is a separate `Activation` node.
public final class Conv2D: Layer {
    public let name: String
    public var kind: String { "Conv2D" }
    /// Keras HWIO: `[kh, kw, cin, cout]`.
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
            dilation: dilation, depthwise: false)
    }

    public var parameterCount: Int { kernel.count + (bias?.count ?? 0) }
    var inputChannels: Int { kernel.shape[2] }
    var outputChannels: Int { kernel.shape[3] }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        try convolvedShape(inputShapes, conv: validConv(convolution))
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        try convolve(inputs, conv: validConv(convolution))
    }

    // MARK: backward to the input

    /// dL/dx = the transposed convolution of dL/dy with the same kernel
    /// (oneDNN backward-data); the bias has no effect on it.
    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        try convolveBackward(inputs, outputGradient: outputGradient, conv: validConv(convolution))
    }
}

/// A convolution layer's weights and settings, checked once: the oneDNN
/// convolution, or why there is none (reported by every call). Conv2D and
/// DepthwiseConv2D differ only in the kernel's last axis (output channels, or
/// filters per input channel) and so in the bias length.
struct CheckedConvolution: Sendable {
    let invalid: String?
    let conv: DNNLConvolution?

    init(kernel: Tensor, bias: Tensor?, strides: [Int], padding: Padding, dilation: [Int], depthwise: Bool) {
        let s = kernel.shape
        var problem: String?
        if s.count != 4 || s.contains(where: { $0 <= 0 }) {
            problem =
                depthwise
                ? "depthwise kernel must be [kh, kw, cin, multiplier], got \(s)"
                : "kernel must be [kh, kw, cin, cout], got \(s)"
        } else if let b = bias, b.shape != [depthwise ? s[2] * s[3] : s[3]] {
            problem = "bias must be [\(depthwise ? s[2] * s[3] : s[3])], got \(b.shape)"
        } else {
            problem = checkPair(strides, "strides") ?? checkPair(dilation, "dilation_rate")
        }
        invalid = problem
        conv =
            problem == nil
            ? DNNLConvolution(
                kernel: kernel, bias: bias, strides: strides, dilation: dilation,
                padding: padding, depthwise: depthwise)
            : nil
    }
}

/// The checks around a oneDNN convolution, shared by Conv2D and DepthwiseConv2D
/// (the convolution object knows its kernel size, strides, dilation and padding;
/// the layer supplies its name for errors).
extension Layer {
    func validConv(_ checked: CheckedConvolution) throws -> DNNLConvolution {
        if let invalid = checked.invalid { throw mismatch(invalid) }
        return checked.conv!
    }

    func convolvedShape(_ inputShapes: [[Int]], conv: DNNLConvolution) throws -> [Int] {
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: conv.cin)
        var out = [-1, -1, conv.cout]
        let window = [conv.kh, conv.kw]
        for axis in 0..<2 where s[axis] != -1 {
            let size = conv.padding.outputSizeAndPadding(
                input: s[axis], kernel: window[axis],
                stride: conv.strides[axis], dilation: conv.dilation[axis]
            ).size
            guard size > 0 else { throw mismatch("input \(s) is smaller than the \(conv.kh)x\(conv.kw) window") }
            out[axis] = size
        }
        return out
    }

    func convolve(_ inputs: [Tensor], conv: DNNLConvolution) throws -> Tensor {
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: conv.cin)
        guard let g = conv.geometry(x.shape) else { throw mismatch("input \(x.shape) is smaller than the window") }
        if g.n == 0 { return Tensor(zeros: [0, g.oh, g.ow, conv.cout]) }
        return try conv.forward(x)
    }

    /// `convolve` for a convolution with a `sum` post-op: the result is added
    /// to `residual` (the output's shape), in place.
    func convolve(_ inputs: [Tensor], conv: DNNLConvolution, addingTo residual: inout Tensor) throws {
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: conv.cin)
        guard let g = conv.geometry(x.shape) else { throw mismatch("input \(x.shape) is smaller than the window") }
        guard residual.shape == [g.n, g.oh, g.ow, conv.cout] else {
            throw mismatch("residual \(residual.shape) does not match the output \([g.n, g.oh, g.ow, conv.cout])")
        }
        if g.n == 0 { return }
        try conv.forward(x, addingTo: &residual)
    }

    func convolveBackward(_ inputs: [Tensor], outputGradient: Tensor, conv: DNNLConvolution) throws -> [Tensor] {
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
