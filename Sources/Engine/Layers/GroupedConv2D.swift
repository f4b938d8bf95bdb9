/// Keras `Conv2D` with `groups` > 1 (ResNeXt's, RegNet's): the input channels and the
/// filters split into equal groups, each group of filters convolving its group of input
/// channels alone. Kernel `[kh, kw, cin / groups, filters]`. Each group is a oneDNN
/// convolution of its own; forward and backward copy the channel slices in and out.
public final class GroupedConv2D: Layer {
    public let name: String
    public var kind: String { "Conv2D" }
    public let groups: Int
    public let kernel: Tensor
    public let bias: Tensor?
    let parts: [CheckedConvolution]
    private let invalid: String?

    public init(name: String, kernel: Tensor, bias: Tensor?, groups: Int, strides: [Int], padding: Padding, dilation: [Int]) {
        self.name = name
        self.kernel = kernel
        self.bias = bias
        self.groups = groups
        let s = kernel.shape
        guard s.count == 4, groups > 0, s[3] % groups == 0, s.allSatisfy({ $0 > 0 }) else {
            invalid = "kernel \(s) does not split into \(groups) groups of filters"
            parts = []
            return
        }
        invalid = bias.map { $0.count == s[3] ? nil : "bias must be [\(s[3])], got \($0.shape)" } ?? nil
        let per = s[3] / groups
        parts = (0..<groups).map { g in
            // The group's filters: kernel[..., g·per ..< (g+1)·per].
            var k = [Float](repeating: 0, count: s[0] * s[1] * s[2] * per)
            for i in 0..<(s[0] * s[1] * s[2]) {
                for o in 0..<per { k[i * per + o] = kernel.scalars[i * s[3] + g * per + o] }
            }
            let b = bias.map { Tensor(shape: [per], scalars: Array($0.scalars[(g * per)..<((g + 1) * per)])) }
            return CheckedConvolution(
                kernel: Tensor(shape: [s[0], s[1], s[2], per], scalars: k), bias: b, strides: strides, padding: padding,
                dilation: dilation, depthwise: false)
        }
    }

    public var parameterCount: Int { kernel.count + (bias?.count ?? 0) }

    private func convolutions() throws -> [DNNLConvolution] {
        if let invalid { throw mismatch(invalid) }
        return try parts.map { try validConv($0) }
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let convs = try convolutions()
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: convs[0].cin * groups)
        var out = try convolvedShape([[s[0], s[1], convs[0].cin]], conv: convs[0])
        out[2] = kernel.shape[3]
        return out
    }

    /// Channels `group·width ..< (group+1)·width` of an NHWC tensor with `total` channels.
    private func slice(_ t: Tensor, group: Int, width: Int) -> Tensor {
        let total = t.shape[3]
        let positions = t.count / total
        var out = [Float](repeating: 0, count: positions * width)
        t.scalars.withUnsafeBufferPointer { ts in
            out.withUnsafeMutableBufferPointer { os in
                for p in 0..<positions {
                    (os.baseAddress! + p * width).update(from: ts.baseAddress! + p * total + group * width, count: width)
                }
            }
        }
        return Tensor(shape: [t.shape[0], t.shape[1], t.shape[2], width], scalars: out)
    }

    /// Writes `part` into channels `group·width ..< (group+1)·width` of `into`.
    private func place(_ part: Tensor, into: inout [Float], total: Int, group: Int) {
        let width = part.shape[3]
        let positions = part.count / Swift.max(width, 1)
        part.scalars.withUnsafeBufferPointer { ps in
            into.withUnsafeMutableBufferPointer { os in
                for p in 0..<positions {
                    (os.baseAddress! + p * total + group * width).update(from: ps.baseAddress! + p * width, count: width)
                }
            }
        }
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let convs = try convolutions()
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: convs[0].cin * groups)
        var y: [Float] = []
        var shape: [Int] = []
        for (g, conv) in convs.enumerated() {
            let part = try convolve([slice(x, group: g, width: conv.cin)], conv: conv)
            if y.isEmpty {
                shape = [part.shape[0], part.shape[1], part.shape[2], kernel.shape[3]]
                y = [Float](repeating: 0, count: shape.reduce(1, *))
            }
            place(part, into: &y, total: kernel.shape[3], group: g)
        }
        return Tensor(shape: shape, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let convs = try convolutions()
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: convs[0].cin * groups)
        guard outputGradient.rank == 4, outputGradient.shape[3] == kernel.shape[3] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output")
        }
        var dx = [Float](repeating: 0, count: x.count)
        for (g, conv) in convs.enumerated() {
            let xg = slice(x, group: g, width: conv.cin)
            let dg = try convolveBackward([xg], outputGradient: slice(outputGradient, group: g, width: conv.cout), conv: conv)[0]
            place(dg, into: &dx, total: x.shape[3], group: g)
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
