/// Keras `Permute((2, 1, 3))` (channels last): rows and columns swapped, channels kept —
/// the one permutation that leaves an image a feature map. Backward swaps them back.
public final class SwapSpatialAxes: Layer {
    public let name: String
    public var kind: String { "Permute" }

    public init(name: String) { self.name = name }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: nil)
        return [s[1], s[0], s[2]]
    }

    private func swapped(_ x: Tensor) throws -> Tensor {
        try checkFeatureMap(x, channels: nil)
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var y = [Float](repeating: 0, count: x.count)
        x.scalars.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                for b in 0..<n {
                    for i in 0..<h {
                        for j in 0..<w {
                            (ys.baseAddress! + ((b * w + j) * h + i) * c).update(
                                from: xs.baseAddress! + ((b * h + i) * w + j) * c, count: c)
                        }
                    }
                }
            }
        }
        return Tensor(shape: [n, w, h, c], scalars: y)
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor { try swapped(try singleInput(inputs)) }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard outputGradient.shape == [x.shape[0], x.shape[2], x.shape[1], x.shape[3]] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output")
        }
        return [try swapped(outputGradient)]
    }
}
