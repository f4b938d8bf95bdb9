/// Keras `ZeroPadding2D` (channels_last): zeros around each feature map.
/// Forward copies rows into a zeroed, larger map; backward crops the gradient.
public final class ZeroPadding2D: Layer {
    public let name: String
    public var kind: String { "ZeroPadding2D" }
    public let top: Int, bottom: Int, left: Int, right: Int
    private let invalid: String?

    public init(name: String, top: Int, bottom: Int, left: Int, right: Int) {
        self.name = name
        self.top = top
        self.bottom = bottom
        self.left = left
        self.right = right
        invalid =
            [top, bottom, left, right].allSatisfy { $0 >= 0 }
            ? nil : "padding must be non-negative, got top \(top) bottom \(bottom) left \(left) right \(right)"
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        if let invalid { throw mismatch(invalid) }
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: nil)
        return [s[0] == -1 ? -1 : s[0] + top + bottom, s[1] == -1 ? -1 : s[1] + left + right, s[2]]
    }

    /// Copies the interior rows between the unpadded map `small` and the padded
    /// map `big`: forward writes big from small, backward small from big.
    private func copyInterior(
        _ shape: [Int], from src: UnsafeBufferPointer<Float>,
        to dst: UnsafeMutableBufferPointer<Float>, forward: Bool
    ) {
        let (h, w) = (shape[1], shape[2])
        copyInteriorRows(
            n: shape[0], h: h, w: w, c: shape[3], bigHeight: h + top + bottom, bigWidth: w + left + right,
            top: top, left: left, from: src, to: dst, intoBig: forward)
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        if let invalid { throw mismatch(invalid) }
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        let s = x.shape
        let outShape = [s[0], s[1] + top + bottom, s[2] + left + right, s[3]]
        var y = [Float](repeating: 0, count: outShape.reduce(1, *))
        x.scalars.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in copyInterior(s, from: xs, to: ys, forward: true) }
        }
        return Tensor(shape: outShape, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        if let invalid { throw mismatch(invalid) }
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        let s = x.shape
        guard outputGradient.shape == [s[0], s[1] + top + bottom, s[2] + left + right, s[3]] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(s) padded")
        }
        var dx = [Float](repeating: 0, count: x.count)
        outputGradient.scalars.withUnsafeBufferPointer { gs in
            dx.withUnsafeMutableBufferPointer { d in copyInterior(s, from: gs, to: d, forward: false) }
        }
        return [Tensor(shape: s, scalars: dx)]
    }
}
