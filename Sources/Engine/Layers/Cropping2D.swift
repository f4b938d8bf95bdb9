/// Keras `Cropping2D` (channels_last): drops rows and columns at the borders
/// of each feature map (NASNet aligns its cells with it). Forward copies the
/// kept rows; backward puts the gradient back in place, zero where cropped.
public final class Cropping2D: Layer {
    public let name: String
    public var kind: String { "Cropping2D" }
    public let top: Int, bottom: Int, left: Int, right: Int

    public init(name: String, top: Int, bottom: Int, left: Int, right: Int) {
        self.name = name
        self.top = top
        self.bottom = bottom
        self.left = left
        self.right = right
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        guard [top, bottom, left, right].allSatisfy({ $0 >= 0 }) else {
            throw mismatch("cropping must be non-negative, got top \(top) bottom \(bottom) left \(left) right \(right)")
        }
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: nil)
        let h = s[0] == -1 ? -1 : s[0] - top - bottom
        let w = s[1] == -1 ? -1 : s[1] - left - right
        guard h == -1 || h > 0, w == -1 || w > 0 else {
            throw mismatch("cropping top \(top) bottom \(bottom) left \(left) right \(right) leaves nothing of \(s)")
        }
        return [h, w, s[2]]
    }

    /// Copies the kept rows between the full map and the cropped one:
    /// forward full → cropped, backward cropped → full.
    private func copyKept(
        _ full: [Int], from src: UnsafeBufferPointer<Float>,
        to dst: UnsafeMutableBufferPointer<Float>, forward: Bool
    ) {
        let (h, w) = (full[1], full[2])
        copyInteriorRows(
            n: full[0], h: h - top - bottom, w: w - left - right, c: full[3], bigHeight: h, bigWidth: w,
            top: top, left: left, from: src, to: dst, intoBig: !forward)
    }

    private func croppedShape(_ x: Tensor) throws -> [Int] {
        try checkFeatureMap(x, channels: nil)
        let s = x.shape
        let (h, w) = (s[1] - top - bottom, s[2] - left - right)
        guard h > 0, w > 0, [top, bottom, left, right].allSatisfy({ $0 >= 0 }) else {
            throw mismatch("cropping top \(top) bottom \(bottom) left \(left) right \(right) leaves nothing of \(s)")
        }
        return [s[0], h, w, s[3]]
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        let outShape = try croppedShape(x)
        var y = [Float](repeating: 0, count: outShape.reduce(1, *))
        x.scalars.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in copyKept(x.shape, from: xs, to: ys, forward: true) }
        }
        return Tensor(shape: outShape, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard outputGradient.shape == (try croppedShape(x)) else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape) cropped")
        }
        var dx = [Float](repeating: 0, count: x.count)
        outputGradient.scalars.withUnsafeBufferPointer { gs in
            dx.withUnsafeMutableBufferPointer { d in copyKept(x.shape, from: gs, to: d, forward: false) }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
