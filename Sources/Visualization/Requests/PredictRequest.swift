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

/// The answer of a predict request (its JSON document).
public struct PredictionList: Codable, Sendable {
    public var model: String
    public var top: [Prediction]
    public var output: [Float]?
}

extension ModelSession {
    public func predictions(_ request: PredictRequest, input: RenderInput, limits: RenderLimits = RenderLimits()) throws -> PredictionList {
        let r = try request.canonical(for: self)
        let (x, _) = try prepare(input, limits: limits)
        guard x.batch == 1 else { throw RequestError.unsupported("predict takes one sample; the input holds \(x.batch)") }
        let y = try Numerics.scoped(r.numerics) { try network.predict(x).scalars }
        return PredictionList(model: profile.name, top: rank(y, top: r.top), output: r.output ? y : nil)
    }

    public func render(_ request: PredictRequest, input: RenderInput, limits: RenderLimits = RenderLimits()) throws -> Rendered {
        Rendered(
            body: try jsonDocument(try predictions(request, input: input, limits: limits)), format: .json,
            facts: Fact.numerics(request.numerics))
    }
}
