/// Keras `AveragePooling2D` (channels_last). Forward on oneDNN
/// (`pooling_avg_exclude_padding`, NHWC in place): with 'same', padded cells do
/// not count, as in TensorFlow.
///
/// Backward is a Swift loop: each output gradient is spread evenly over the
/// input cells its window covered (the same count the forward divided by).
/// It is one pass with no state; a oneDNN primitive would add plan caching for
/// a step that is a small share of a CNN's backward time.
public final class AveragePooling2D: Layer {
    public let name: String
    public var kind: String { "AveragePooling2D" }
    private let window: Pooling2DWindow
    public var poolSize: [Int] { window.poolSize }
    public var strides: [Int] { window.strides }
    public var padding: Padding { window.padding }

    public init(name: String, poolSize: [Int], strides: [Int], padding: Padding) {
        self.name = name
        window = Pooling2DWindow(kind: .average, poolSize: poolSize, strides: strides, padding: padding)
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] { try pooledShape(inputShapes, window) }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor { try pooledForward(inputs, window) }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let (x, g) = try pooledBackwardInput(inputs, window, outputGradient: outputGradient)
        var dx = [Float](repeating: 0, count: x.count)
        let c = g.c
        guard c > 0 else { return [Tensor(zeros: x.shape)] }
        let (sy, sx, py, px) = (strides[0], strides[1], poolSize[0], poolSize[1])
        outputGradient.scalars.withUnsafeBufferPointer { gs in
            dx.withUnsafeMutableBufferPointer { d in
                for n in 0..<g.n {
                    for oy in 0..<g.oh {
                        let y0 = oy * sy - g.padTop
                        let ys = max(0, y0)..<min(g.h, y0 + py)
                        for ox in 0..<g.ow {
                            let x0 = ox * sx - g.padLeft
                            let xr = max(0, x0)..<min(g.w, x0 + px)
                            let inv = 1 / Float(ys.count * xr.count)
                            let out = ((n * g.oh + oy) * g.ow + ox) * c
                            for iy in ys {
                                for ix in xr {
                                    let (d, gs) = (d.baseAddress! + ((n * g.h + iy) * g.w + ix) * c, gs.baseAddress! + out)
                                    for k in 0..<c { d[k] += gs[k] * inv }
                                }
                            }
                        }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
