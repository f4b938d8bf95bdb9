import Engine
import Foundation

/// `POST /api/predict` and `convlens predict`: the model's top predictions for an image.
public struct PredictRequest: RenderRequest {
    public static let kind = "predict"

    public var top = 5
    /// Also give the raw output vector.
    public var output = false
    /// `fast`: the forward pass may run Winograd convolutions (`Numerics`; scores equal to
    /// float rounding). Canonical nil for exact.
    public var numerics: Numerics?

    public static let topRange = 1...1000

    public init(top: Int = 5, output: Bool = false, numerics: Numerics? = nil) {
        self.top = top
        self.output = output
        self.numerics = numerics
    }

    public func canonical(for session: ModelSession) throws -> PredictRequest {
        try RequestError.check("top", top, in: Self.topRange)
        var r = self
        r.numerics = Numerics.canonical(numerics)
        return r
    }
}

/// The answer of a predict request (its JSON document). A segmentation's `top` ranks its
/// classes by their mean per-pixel score, and `segmentation` is its predicted mask.
public struct PredictionList: Codable, Sendable {
    public var model: String
    public var top: [Prediction]
    public var output: [Float]?
    public var segmentation: SegmentationMask?
}

/// A per-pixel output's predicted class of every cell (its argmax), row-major, and the
/// cells each class owns: what the gallery draws over the photo instead of a top-5 list.
public struct SegmentationMask: Codable, Sendable, Equatable {
    public var height: Int
    public var width: Int
    public var argmax: [Int]
    /// Cells per class, indexed by class.
    public var cells: [Int]

    /// nil unless `output` is `height × width × classes` with at least two classes.
    public init?(output: [Float], shape: [Int]) {
        guard shape.count == 3, shape.allSatisfy({ $0 > 0 }), shape[2] > 1, output.count == shape[0] * shape[1] * shape[2] else {
            return nil
        }
        let classes = shape[2]
        (height, width) = (shape[0], shape[1])
        cells = [Int](repeating: 0, count: classes)
        argmax = stride(from: 0, to: output.count, by: classes).map { start in
            var best = 0
            for c in 1..<classes where output[start + c] > output[start + best] { best = c }
            return best
        }
        for c in argmax { cells[c] += 1 }
    }
}

extension ModelSession {
    public func predictions(_ request: PredictRequest, input: RenderInput, limits: RenderLimits = RenderLimits()) throws -> PredictionList {
        let r = try request.canonical(for: self)
        let (x, _) = try prepare(input, limits: limits)
        guard x.batch == 1 else { throw RequestError.unsupported("predict takes one sample; the input holds \(x.batch)") }
        let output = try Numerics.scoped(r.numerics) { try network.predict(x) }
        let y = output.scalars
        // The output's own shape: an any-size model's grid is known only now.
        let mask = hasPerPixelOutput ? SegmentationMask(output: y, shape: Array(output.shape.dropFirst())) : nil
        return PredictionList(model: profile.name, top: rankClasses(y, top: r.top), output: r.output ? y : nil, segmentation: mask)
    }
}

extension PredictRequest {
    public func render(
        on session: ModelSession, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        Rendered(
            body: try jsonDocument(try session.predictions(self, input: try required(input), limits: limits)), format: .json,
            facts: Fact.numerics(numerics))
    }
}
