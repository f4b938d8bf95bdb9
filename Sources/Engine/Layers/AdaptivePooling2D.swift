/// Keras `AdaptiveAveragePooling2D` / `AdaptiveMaxPooling2D` (channels last): the map
/// cut into `outputSize` windows per axis, window i spanning
/// [⌊i·in/out⌋, ⌈(i+1)·in/out⌉) (float32, as Keras' TensorFlow backend computes them),
/// each averaged or maxed. Backward spreads a window's gradient evenly (average) or
/// hands it to the window's first largest input (max).
public final class AdaptivePooling2D: Layer {
    public let name: String
    public let max: Bool
    public let outputSize: [Int]
    public var kind: String { max ? "AdaptiveMaxPooling2D" : "AdaptiveAveragePooling2D" }

    public init(name: String, max: Bool, outputSize: [Int]) {
        self.name = name
        self.max = max
        self.outputSize = outputSize
    }

    private func windows(input: Int, output: Int) -> [Range<Int>] {
        (0..<output).map { i in
            let start = Swift.min(Int((Float(i) * Float(input) / Float(output)).rounded(.down)), input - 1)
            let end = Swift.min(Int((Float(i + 1) * Float(input) / Float(output)).rounded(.up)), input)
            return start..<Swift.max(end, start + 1)
        }
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: nil)
        guard let invalid = checkPair(outputSize, "output_size") else { return [outputSize[0], outputSize[1], s[2]] }
        throw mismatch(invalid)
    }

    /// Visits each output cell with its window's rows and columns.
    private func cells(_ shape: [Int], _ body: (_ b: Int, _ oy: Int, _ ox: Int, Range<Int>, Range<Int>) -> Void) throws {
        if let invalid = checkPair(outputSize, "output_size") { throw mismatch(invalid) }
        let (rows, cols) = (windows(input: shape[1], output: outputSize[0]), windows(input: shape[2], output: outputSize[1]))
        for b in 0..<shape[0] {
            for (oy, ys) in rows.enumerated() {
                for (ox, xs) in cols.enumerated() { body(b, oy, ox, ys, xs) }
            }
        }
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
        var y = [Float](repeating: 0, count: x.shape[0] * outputSize[0] * outputSize[1] * c)
        let xs = x.scalars
        try cells(x.shape) { b, oy, ox, rows, cols in
            let out = ((b * outputSize[0] + oy) * outputSize[1] + ox) * c
            for k in 0..<c {
                var acc: Float = max ? -.infinity : 0
                for yy in rows {
                    for xx in cols {
                        let v = xs[((b * h + yy) * w + xx) * c + k]
                        acc = max ? Swift.max(acc, v) : acc + v
                    }
                }
                y[out + k] = max ? acc : acc / Float(rows.count * cols.count)
            }
        }
        return Tensor(shape: [x.shape[0], outputSize[0], outputSize[1], c], scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
        guard outputGradient.shape == [x.shape[0], outputSize[0], outputSize[1], c] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output")
        }
        var dx = [Float](repeating: 0, count: x.count)
        let (xs, gs) = (x.scalars, outputGradient.scalars)
        try cells(x.shape) { b, oy, ox, rows, cols in
            let out = ((b * outputSize[0] + oy) * outputSize[1] + ox) * c
            for k in 0..<c {
                let g = gs[out + k]
                if max {
                    var best = -Float.infinity
                    var at = 0
                    for yy in rows {
                        for xx in cols {
                            let i = ((b * h + yy) * w + xx) * c + k
                            if xs[i] > best { (best, at) = (xs[i], i) }
                        }
                    }
                    dx[at] += g
                } else {
                    let share = g / Float(rows.count * cols.count)
                    for yy in rows {
                        for xx in cols { dx[((b * h + yy) * w + xx) * c + k] += share }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, scalars: dx)]
    }
}
