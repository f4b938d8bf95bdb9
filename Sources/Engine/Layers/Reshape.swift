/// Keras `Reshape`: each sample's scalars, in order, viewed with a new shape
/// (one entry may be -1: whatever is left). EfficientNet's squeeze-and-excite
/// writes `[c]` → `[1, 1, c]` with it. Backward reshapes the gradient back.
public final class Reshape: Layer {
    public let name: String
    public var kind: String { "Reshape" }
    /// The per-sample target shape as Keras' config gives it (-1 at most once).
    public let targetShape: [Int]

    public init(name: String, targetShape: [Int]) {
        self.name = name
        self.targetShape = targetShape
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        guard targetShape.allSatisfy({ $0 > 0 || $0 == -1 }), targetShape.filter({ $0 == -1 }).count <= 1 else {
            throw mismatch("target shape \(targetShape) may hold positive sizes and at most one -1")
        }
        if s.contains(-1) {
            // The input size varies: only a shape without -1 can be checked per batch.
            return targetShape
        }
        return try resolve(count: s.reduce(1, *), input: s)
    }

    private func resolve(count: Int, input: [Int]) throws -> [Int] {
        let known = targetShape.filter { $0 != -1 }.reduce(1, *)
        guard let free = targetShape.firstIndex(of: -1) else {
            guard known == count else { throw mismatch("cannot reshape \(input) (\(count) values) to \(targetShape)") }
            return targetShape
        }
        guard known > 0, count % known == 0 else { throw mismatch("cannot reshape \(input) (\(count) values) to \(targetShape)") }
        var out = targetShape
        out[free] = count / known
        return out
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        guard x.rank >= 1 else { throw mismatch("Reshape needs a batch axis") }
        return x.reshaped([x.batch] + (try resolve(count: x.sampleCount, input: x.sampleShape)))
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        guard outputGradient.count == x.count else {
            throw mismatch("output gradient \(outputGradient.shape) does not match input \(x.shape)")
        }
        return [outputGradient.reshaped(x.shape)]
    }
}
