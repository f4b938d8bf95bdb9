/// Keras `Conv2DTranspose` (channels_last), forward and backward to the input on oneDNN.
///
/// A transposed convolution is the backward-data pass of the convolution it
/// transposes, so it is computed as one: the full map, `(in − 1)·stride + the
/// dilated kernel` cells per axis, is the backward-data pass of an unpadded
/// convolution (`inner`) whose input is that map; Keras' output is the window
/// of it that TensorFlow's `conv2d_transpose` keeps (`Window`), zero beyond
/// the full map, plus the bias. Backward is `inner`'s forward pass on the
/// gradient put back into the full map.
public final class Conv2DTranspose: Layer {
    public let name: String
    public var kind: String { "Conv2DTranspose" }
    /// Keras' layout: `[kh, kw, filters, input channels]`.
    public let kernel: Tensor
    public let bias: Tensor?
    public let strides: [Int]
    public let padding: Padding
    /// Keras' `output_padding` per axis; nil: Keras' default for the padding.
    public let outputPadding: [Int]?
    public let dilation: [Int]
    let inner: CheckedConvolution

    public init(
        name: String, kernel: Tensor, bias: Tensor?, strides: [Int], padding: Padding, outputPadding: [Int]?,
        dilation: [Int]
    ) {
        self.name = name
        self.kernel = kernel
        self.bias = bias
        self.strides = strides
        self.padding = padding
        self.outputPadding = outputPadding
        self.dilation = dilation
        // The bias is added to the window, so the inner convolution has none.
        inner = CheckedConvolution(kernel: kernel, bias: nil, strides: strides, padding: .valid, dilation: dilation, depthwise: false)
    }

    public var parameterCount: Int { kernel.count + (bias?.count ?? 0) }
    var filters: Int { kernel.shape[2] }
    var inputChannels: Int { kernel.shape[3] }

    /// Along one axis: the output size Keras gives, and the first cell of the full map it keeps.
    struct Window: Equatable {
        var full: Int
        var size: Int
        var start: Int
    }

    func window(input: Int, axis: Int) throws -> Window {
        let k = kernel.shape[axis]
        let (s, d) = (strides[axis], dilation[axis])
        guard input > 0, input <= (Int.max / 4) / s else { throw mismatch("input size \(input) is out of range") }
        let effective = (k - 1) * d + 1
        let full = (input - 1) * s + effective
        let size: Int
        switch padding {
        case .valid:
            size = (input - 1) * s + effective + (outputPadding?[axis] ?? (max(effective, s) - effective))
        case .same:
            size = outputPadding.map { (input - 1) * s + effective % 2 + $0[axis] } ?? input * s
        }
        guard size > 0 else { throw mismatch("output padding leaves an empty output for input size \(input)") }
        // conv2d_transpose is the gradient of a convolution of the output; its padding before
        // ('same': half of what that convolution needs, the smaller half) is the window's start.
        let start = padding == .same ? max(0, full - size) / 2 : 0
        return Window(full: full, size: size, start: start)
    }

    private func checked() throws -> DNNLConvolution {
        if let b = bias, b.shape != [filters] { throw mismatch("bias must be [\(filters)], got \(b.shape)") }
        if let p = outputPadding {
            guard p.count == 2, zip(p, strides).allSatisfy({ $0 >= 0 && ($0 < $1 || $0 == 0) }) else {
                throw mismatch("output_padding \(p) must be non-negative and smaller than the strides \(strides)")
            }
        }
        return try validConv(inner)
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let conv = try checked()
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: conv.cout)
        return [
            s[0] == -1 ? -1 : try window(input: s[0], axis: 0).size, s[1] == -1 ? -1 : try window(input: s[1], axis: 1).size,
            filters,
        ]
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let conv = try checked()
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: conv.cout)
        let (wy, wx) = (try window(input: x.shape[1], axis: 0), try window(input: x.shape[2], axis: 1))
        let n = x.shape[0]
        let full: Tensor =
            n == 0
            ? Tensor(zeros: [0, wy.full, wx.full, filters])
            : try conv.backwardData(x, inputShape: [n, wy.full, wx.full, filters])
        var y = [Float](repeating: 0, count: n * wy.size * wx.size * filters)
        y.withUnsafeMutableBufferPointer { ys in
            full.scalars.withUnsafeBufferPointer { copyWindow(n, wy, wx, from: $0, to: ys, intoFull: false) }
            if let bias {
                bias.scalars.withUnsafeBufferPointer { bs in
                    for p in 0..<(n * wy.size * wx.size) {
                        let row = ys.baseAddress! + p * filters
                        for c in 0..<filters { row[c] += bs[c] }
                    }
                }
            }
        }
        return Tensor(shape: [n, wy.size, wx.size, filters], scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let conv = try checked()
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: conv.cout)
        let (wy, wx) = (try window(input: x.shape[1], axis: 0), try window(input: x.shape[2], axis: 1))
        let n = x.shape[0]
        guard outputGradient.shape == [n, wy.size, wx.size, filters] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output \([n, wy.size, wx.size, filters])")
        }
        if n == 0 { return [Tensor(zeros: x.shape)] }
        var full = [Float](repeating: 0, count: n * wy.full * wx.full * filters)
        outputGradient.scalars.withUnsafeBufferPointer { gs in
            full.withUnsafeMutableBufferPointer { copyWindow(n, wy, wx, from: gs, to: $0, intoFull: true) }
        }
        return [try conv.forward(Tensor(shape: [n, wy.full, wx.full, filters], scalars: full))]
    }

    /// Copies Keras' output window between the full map `[n, full, full, filters]` and the
    /// output `[n, size, size, filters]`: forward (`intoFull` false) reads the window out of
    /// the full map, backward writes the window's gradient into it. The output's cells past
    /// the full map have no source.
    private func copyWindow(
        _ n: Int, _ wy: Window, _ wx: Window, from src: UnsafeBufferPointer<Float>, to dst: UnsafeMutableBufferPointer<Float>,
        intoFull: Bool
    ) {
        let rows = min(wy.size, wy.full - wy.start)
        let count = min(wx.size, wx.full - wx.start) * filters
        for b in 0..<n {
            for r in 0..<rows {
                let f = ((b * wy.full + r + wy.start) * wx.full + wx.start) * filters
                let w = (b * wy.size + r) * wx.size * filters
                let (from, to) = intoFull ? (w, f) : (f, w)
                (dst.baseAddress! + to).update(from: src.baseAddress! + from, count: count)
            }
        }
    }
}
