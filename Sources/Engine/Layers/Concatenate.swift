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

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let (rows, widths) = try check(inputs)
        let total = widths.reduce(0, +)
        var y = [Float](repeating: 0, count: rows * total)
        var offset = 0
        for (t, w) in zip(inputs, widths) {
            for r in 0..<rows {
                for k in 0..<w { y[r * total + offset + k] = t.scalars[r * w + k] }
            }
            offset += w
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
        return zip(inputs, widths).map { t, w in
            var g = [Float](repeating: 0, count: rows * w)
            for r in 0..<rows {
                for k in 0..<w { g[r * w + k] = outputGradient.scalars[r * total + offset + k] }
            }
            offset += w
            return Tensor(shape: t.shape, scalars: g)
        }
    }
}
