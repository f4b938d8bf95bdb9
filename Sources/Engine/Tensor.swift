/// A dense Float32 tensor with a leading batch dimension.
///
/// Feature maps are NHWC (`[n, h, w, c]`), flat features `[n, c]`. Storage is a
/// plain contiguous array in row-major order, so the value semantics are Swift's
/// own (copy on write) and a tensor can cross concurrency domains freely.
/// Kernels that prefer another layout (oneDNN's blocked formats) reorder inside
/// the layer; every tensor a caller or another layer sees is in this layout.
public struct Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(
            shape.reduce(1, *) == scalars.count,
            "shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }
    /// The batch size (the leading dimension).
    public var batch: Int { shape[0] }
    /// The shape of one sample: everything after the batch dimension.
    public var sampleShape: [Int] { Array(shape.dropFirst()) }
    /// Scalars per sample.
    public var sampleCount: Int { shape.dropFirst().reduce(1, *) }

    /// The same scalars viewed with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }

    /// Sample `i` of the batch, as a batch of one.
    public func sample(_ i: Int) -> Tensor {
        let n = sampleCount
        return Tensor(shape: [1] + sampleShape, scalars: Array(scalars[(i * n)..<((i + 1) * n)]))
    }

    /// Stacks batches along the batch dimension. All must share their sample shape.
    public static func concatenateBatches(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty)
        let sample = parts[0].sampleShape
        precondition(parts.allSatisfy { $0.sampleShape == sample }, "sample shapes differ")
        var all = [Float]()
        all.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for p in parts { all.append(contentsOf: p.scalars) }
        return Tensor(shape: [parts.reduce(0) { $0 + $1.batch }] + sample, scalars: all)
    }

    public var maxAbs: Float { scalars.reduce(0) { max($0, abs($1)) } }

    /// Largest |self − other|; shapes must match.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(scalars[i] - other.scalars[i])) }
        return m
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        "Tensor\(shape)"
    }
}
