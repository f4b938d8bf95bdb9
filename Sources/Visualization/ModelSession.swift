import Engine
import Foundation
import Imaging
import KerasFormat

/// A loaded model with what its profile says about it (input pipeline, labels):
/// what the command line and the server both work on. Immutable, so one session
/// serves concurrent requests (the engine's plan caches are locked).
public final class ModelSession: Sendable {
    public let keras: KerasModel
    public let profile: ModelProfile
    /// How an image becomes this model's input; nil when the input is not an image
    /// (then `imagePipeline()` says why).
    public let pipeline: InputPipeline?
    private let pipelineProblem: String?

    public init(keras: KerasModel, profile: ModelProfile) throws {
        self.keras = keras
        self.profile = profile
        do {
            pipeline = try InputPipeline(profile: profile, model: keras)
            pipelineProblem = nil
        } catch {
            pipeline = nil
            pipelineProblem = "\(error)"
        }
    }

    /// The image pipeline, or an error saying why this model takes no images.
    public func imagePipeline() throws -> InputPipeline {
        guard let pipeline else { throw VisualizationError.invalid(pipelineProblem ?? "the model takes no images") }
        return pipeline
    }

    /// Loads the model a profile names.
    public convenience init(profile: ModelProfile) throws {
        try self.init(keras: try KerasModel.load(contentsOf: profile.modelURL), profile: profile)
    }

    public var network: Network { keras.network }
    public var labels: [String]? { profile.labels }

    public func label(of k: Int) -> String? {
        labels.flatMap { k >= 0 && k < $0.count ? $0[k] : nil }
    }

    /// The layer of that name (`input` is the model's input).
    public func layer(named name: String) throws -> LayerSummary {
        if let s = keras.layer(named: name) { return s }
        throw VisualizationError.unknownLayer(name, valid: keras.layers.map(\.name))
    }

    /// A layer that must have a spatial feature map (H, W, C).
    public func spatialLayer(named name: String) throws -> LayerSummary {
        let s = try layer(named: name)
        guard s.isSpatial else { throw VisualizationError.notSpatial(layer: name, shape: s.outputShape) }
        return s
    }

    /// The node whose unit k a class score is read from: the logits when the model
    /// ends in softmax (unless the probability is asked for), else the output.
    public func scoreNode(postSoftmax: Bool) -> Int {
        if !postSoftmax, let logits = keras.logitsNode { return logits }
        return network.outputNode
    }

    public var classCount: Int { network.nodes[network.outputNode].outputShape.last ?? 0 }

    /// A class given as an index or as one of the comma-separated names of a label.
    public func resolveClass(_ text: String) throws -> Int {
        let count = classCount
        if let k = Int(text) {
            guard k >= 0, k < count else { throw VisualizationError.classOutOfRange(k, count: count) }
            return k
        }
        guard let labels else { throw VisualizationError.invalid("class '\(text)' is not a number and the model has no labels") }
        let wanted = text.lowercased().trimmingCharacters(in: .whitespaces)
        let match = labels.indices.first { i in
            labels[i].lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.contains(wanted)
        }
        guard let match else { throw VisualizationError.invalid("no class labelled '\(text)'") }
        return match
    }

    /// The top-k of the model's output for one prepared input.
    public func predict(_ input: Tensor, top: Int) throws -> [Prediction] {
        rank(try network.predict(input).scalars, top: top)
    }

    /// The top-k of one output vector, labelled.
    public func rank(_ output: [Float], top: Int) -> [Prediction] {
        let ranked = output.indices.sorted { output[$0] > output[$1] }.prefix(max(1, top))
        return ranked.map { Prediction(classIndex: $0, label: label(of: $0), score: output[$0]) }
    }
}

/// Softmax of a logit vector (max subtracted first, as Keras does).
public func softmax(_ logits: [Float]) -> [Float] {
    let m = logits.max() ?? 0
    let e = logits.map { Foundation.exp($0 - m) }
    let sum = e.reduce(0, +)
    return e.map { $0 / sum }
}

public struct Prediction: Sendable, Codable, Equatable {
    public var classIndex: Int
    public var label: String?
    public var score: Float

    enum CodingKeys: String, CodingKey { case classIndex = "class", label, score }
}
