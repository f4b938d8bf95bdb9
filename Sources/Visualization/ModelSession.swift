import Engine
import Foundation
import Imaging
import KerasFormat
import Synchronization

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
    /// The layer a heatmap uses when none is named (the rule is at `defaultCAMLayer(of:)`).
    public let defaultCAMLayer: LayerSummary?
    /// The convolutions (engine Conv2D or DepthwiseConv2D, activation fused or not) with a
    /// spatial output, each with the layer whose filters the gallery shows: its output
    /// after its own BatchNorm/activation (`activatedOutput`), where patterns show.
    public let galleryLayers: [(convolution: LayerSummary, target: LayerSummary)]
    private let digest = Mutex<String?>(nil)
    /// The network with its input size left open, for filters drawn at a size other than
    /// a fixed input's (see FilterInputSize.swift); made on first use.
    let openSizeNetwork = Mutex<Network?>(nil)

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
        defaultCAMLayer = Visualization.defaultCAMLayer(of: keras)
        galleryLayers = keras.layers.filter { $0.isSpatial && isConvolution($0, in: keras.network) }
            .map { ($0, activatedOutput(of: $0, in: keras)) }
    }

    /// SHA-256 of the model file and its profile, part of every content address: a
    /// different model or profile gives different addresses. Hashed on first use.
    public func modelDigest() throws -> String {
        try digest.withLock { cached in
            if let cached { return cached }
            var d = SHA256Digest()
            d.update(try SHA256Digest.hexOfFile(at: profile.modelURL))
            if let p = profile.profileURL { d.update((try? Data(contentsOf: p)) ?? Data()) }
            let hex = d.finalizeHex()
            cached = hex
            return hex
        }
    }

    /// The image pipeline, or an error saying why this model takes no images.
    public func imagePipeline() throws -> InputPipeline {
        guard let pipeline else { throw RequestError.unsupported(pipelineProblem ?? "the model takes no images") }
        return pipeline
    }

    /// The model input for a request, and the decoded photo when the input is an image.
    public func prepare(_ input: RenderInput, limits: RenderLimits) throws -> (input: Tensor, photo: Image?) {
        switch input {
        case .image(let data):
            let pipeline = try imagePipeline()
            let image = try pipeline.decode(data, maxPixels: limits.maxImagePixels)
            return (try pipeline.prepare(image).input, image.converted(to: .rgb))
        case .tensor(let t):
            return (try checkedInput(t), nil)
        case .files:
            throw RenderInput.notOneImage
        }
    }

    /// A preprocessed input given as a tensor, with a batch axis added if it lacks one;
    /// refused unless its per-sample shape is the model's.
    public func checkedInput(_ tensor: Tensor) throws -> Tensor {
        let want = network.inputShape
        let x = tensor.rank == want.count ? tensor.reshaped([1] + tensor.shape) : tensor
        guard x.rank == want.count + 1, zip(x.shape.dropFirst(), want).allSatisfy({ $1 == -1 || $0 == $1 }) else {
            let wantText = "(" + want.map { $0 == -1 ? "any" : String($0) }.joined(separator: ", ") + ")"
            throw RequestError.unsupported("the input has shape \(tensor.shape); the model expects per-sample shape \(wantText)")
        }
        return x
    }

    /// The layer a heatmap weights: the one named (spatial), or the default.
    public func camLayer(named name: String?) throws -> LayerSummary {
        if let name { return try spatialLayer(named: name) }
        guard let layer = defaultCAMLayer else {
            throw RequestError.unsupported("the model has no spatial convolutional layer for a heatmap")
        }
        return layer
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
        throw RequestError.unknownLayer(name, valid: keras.layers.map(\.name))
    }

    /// A layer that must have a spatial feature map (H, W, C).
    public func spatialLayer(named name: String) throws -> LayerSummary {
        let s = try layer(named: name)
        guard s.isSpatial, s.nodeId > 0 else { throw RequestError.notSpatial(layer: name, shape: s.outputShape) }
        return s
    }

    /// The node whose unit k a class score is read from: the logits when the model
    /// ends in a softmax or a sigmoid (unless the probability is asked for), else the output.
    public func scoreNode(postActivation: Bool) -> Int {
        if !postActivation, let logits = keras.logitsNode { return logits }
        return network.outputNode
    }

    /// What a score read at `scoreNode(postActivation:)` is: `logit`, `probability`
    /// (the softmax or sigmoid output), or `output` (a model without such a head, whose
    /// output is scored as it is either way).
    public func scoreKind(postActivation: Bool) -> String {
        guard keras.head != nil else { return "output" }
        return postActivation ? "probability" : "logit"
    }

    /// The model's output for one sample, from the scores at `node`: the same values, or
    /// the head's probabilities of its logits.
    public func outputs(fromScores scores: [Float], at node: Int) -> [Float] {
        guard node != network.outputNode, node == keras.logitsNode, let head = keras.head else { return scores }
        let classes = classCount
        guard hasPerPixelOutput, classes > 0, scores.count > classes, scores.count % classes == 0 else {
            return head.probabilities(scores)
        }
        // A per-pixel head normalises each cell's classes on their own, not the whole grid.
        return stride(from: 0, to: scores.count, by: classes).flatMap { head.probabilities(Array(scores[$0..<$0 + classes])) }
    }

    public var classCount: Int { network.nodes[network.outputNode].outputShape.last ?? 0 }

    /// The model's per-sample output shape (-1 where any size goes).
    public var outputShape: [Int] { network.nodes[network.outputNode].outputShape }

    /// Whether the output is per pixel, [height, width, classes] (a segmentation): a class
    /// there is scored over cells (`CAMTarget.Selection.segment`).
    public var hasPerPixelOutput: Bool { outputShape.count == 3 }

    /// A class given as an index or as one of the comma-separated names of a label.
    public func resolveClass(_ text: String) throws -> Int {
        let count = classCount
        if let k = Int(text) {
            guard k >= 0, k < count else { throw RequestError.classOutOfRange(k, count: count) }
            return k
        }
        guard let labels else {
            throw RequestError.badParameter(
                name: "class", value: text, allowed: "give a class index in 0...\(count - 1) (the model has no labels)")
        }
        // A label as typed, or with "+" for spaces (a form-encoded query).
        for wanted in [text, text.replacingOccurrences(of: "+", with: " ")].map({ $0.lowercased().trimmingCharacters(in: .whitespaces) }) {
            let match = labels.indices.first { i in
                labels[i].lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.contains(wanted)
            }
            if let match { return match }
        }
        throw RequestError.badParameter(
            name: "class", value: text, allowed: "give a class index in 0...\(count - 1) or one of the labels' names")
    }

    /// The top-k of the model's output for one prepared input.
    public func predict(_ input: Tensor, top: Int) throws -> [Prediction] {
        rankClasses(try network.predict(input).scalars, top: top)
    }

    /// The top-k classes of one sample's output: its values, or for a per-pixel output each
    /// class's mean over the cells (a softmax head's: the class's share of the probability).
    public func rankClasses(_ output: [Float], top: Int) -> [Prediction] {
        let classes = classCount
        guard hasPerPixelOutput, classes > 0, output.count > classes, output.count % classes == 0 else {
            return rank(output, top: top)
        }
        var sums = [Double](repeating: 0, count: classes)
        for (i, v) in output.enumerated() { sums[i % classes] += Double(v) }
        let cells = Double(output.count / classes)
        return rank(sums.map { Float($0 / cells) }, top: top)
    }

    /// The top-k of one output vector, labelled.
    public func rank(_ output: [Float], top: Int) -> [Prediction] {
        let ranked = output.indices.sorted { output[$0] > output[$1] }.prefix(max(1, top))
        return ranked.map { Prediction(classIndex: $0, label: label(of: $0), score: output[$0]) }
    }
}

/// Whether a Keras layer is a convolution: its engine node (or, with a fused activation,
/// the node feeding that activation) is a Conv2D or DepthwiseConv2D — by type, so no
/// other layer whose class name contains "Conv" counts.
public func isConvolution(_ layer: LayerSummary, in network: Network) -> Bool {
    var node = network.nodes[layer.nodeId]
    if node.layer is Activation, node.inputs.count == 1 { node = network.nodes[node.inputs[0]] }
    return node.layer is Conv2D || node.layer is DepthwiseConv2D
}

public struct Prediction: Sendable, Codable, Equatable {
    public var classIndex: Int
    public var label: String?
    public var score: Float

    enum CodingKeys: String, CodingKey { case classIndex = "class", label, score }
}
