/// Keras `Concatenate` along the last (channel) axis: inputs agree on every other axis.
/// Backward splits the output gradient back into the inputs' channel ranges.
public final class Concatenate: Layer {
    public let name: String
    public var kind: String { "Concatenate" }

    public init(name: String) {
        self.name = name
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        guard inputShapes.count >= 2 else { throw mismatch("Concatenate takes at least 2 inputs, got \(inputShapes.count)") }
        var out = inputShapes[0]
        guard !out.isEmpty else { throw mismatch("cannot concatenate scalars") }
        for s in inputShapes.dropFirst() {
            guard s.count == out.count, zip(s.dropLast(), out.dropLast()).allSatisfy({ $0 == $1 || $0 == -1 || $1 == -1 }) else {
                throw mismatch("inputs differ outside the last axis: \(inputShapes)")
            }
            out[out.count - 1] = out.last! == -1 || s.last! == -1 ? -1 : out.last! + s.last!
        }
        return out
    }

    private func check(_ inputs: [Tensor]) throws -> (rows: Int, widths: [Int]) {
        guard inputs.count >= 2 else { throw mismatch("Concatenate takes at least 2 inputs, got \(inputs.count)") }
        let lead = Array(inputs[0].shape.dropLast())
        guard inputs.allSatisfy({ Array($0.shape.dropLast()) == lead }) else {
            throw mismatch("inputs differ outside the last axis: \(inputs.map(\.shape))")
        }
        return (lead.reduce(1, *), inputs.map { $0.shape.last! })
    }

    // MARK: forward

    /// Row by row, each input's slice of a row is one memory copy; rows are
    /// spread over the compute threads (DenseNet concatenates a growing map
    /// after every layer).
    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let (rows, widths) = try check(inputs)
        let total = widths.reduce(0, +)
        let y = uninitializedFloats(rows * total) { yb in
            var offset = 0
            for (t, w) in zip(inputs, widths) {
                t.scalars.withUnsafeBufferPointer { tb in
                    copyRows(rows, width: w, from: SharedPointer(tb), stride: w, to: SharedPointer(yb) + offset, stride: total)
                }
                offset += w
            }
        }
        return Tensor(shape: Array(inputs[0].shape.dropLast()) + [total], scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let (rows, widths) = try check(inputs)
        let total = widths.reduce(0, +)
        guard outputGradient.count == rows * total else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output")
        }
        var offset = 0
        return outputGradient.scalars.withUnsafeBufferPointer { gb in
            zip(inputs, widths).map { t, w in
                let g = uninitializedFloats(rows * w) { db in
                    copyRows(rows, width: w, from: SharedPointer(gb) + offset, stride: total, to: SharedPointer(db), stride: w)
                }
                offset += w
                return Tensor(shape: t.shape, scalars: g)
            }
        }
    }
}

/// Copies `rows` rows of `width` floats between two row-major buffers of the
/// given row strides, over the compute threads.
private func copyRows(
    _ rows: Int, width: Int, from source: SharedPointer<Float>, stride sourceStride: Int,
    to destination: SharedPointer<Float>, stride destinationStride: Int
) {
    guard width > 0 else { return }
    parallelFor(rows, grain: max(1, (1 << 15) / width)) { range in
        for r in range {
            (destination.p + r * destinationStride).initialize(from: source.p + r * sourceStride, count: width)
        }
    }
}
