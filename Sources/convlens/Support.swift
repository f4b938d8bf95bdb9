import ArgumentParser
import Engine
import Foundation
import Imaging
import KerasFormat
import Visualization

/// Options every command that reads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Keras model file (.h5 from Keras 2 or 3, or .keras), or a ConvLens model profile (.json). Default: the bundled EfficientNet-Lite0.",
        valueName: "file"))
    var model: String?

    @Option(name: .long, help: "Compute threads (oneDNN/OpenMP). Default: all cores.")
    var threads: Int?

    /// The profile of the model to use: the named file (with its sidecar profile, if any) or the bundled default.
    func profile() throws -> ModelProfile {
        if let model {
            let url = URL(fileURLWithPath: model)
            guard FileManager.default.fileExists(atPath: url.path) else { throw CLIError("model file not found: \(model)") }
            return try ModelProfile.resolve(url)
        }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0])
        guard let url = ModelProfile.bundledDefault(executable: exe) else {
            throw CLIError("no --model given and the bundled model (models/efficientnet_lite0.json) was not found; run from the ConvLens checkout or set CONVLENS_MODEL")
        }
        return try ModelProfile.resolve(url)
    }

    func load() throws -> OpenedModel {
        if let threads {
            guard threads >= 1 else { throw CLIError("--threads must be at least 1") }
            ComputeThreads.set(threads)
        }
        let profile = try profile()
        guard FileManager.default.fileExists(atPath: profile.modelURL.path) else {
            throw CLIError("model file not found: \(profile.modelURL.path)")
        }
        return OpenedModel(session: try ModelSession(profile: profile))
    }
}

/// A loaded model and what its profile says about it.
struct OpenedModel {
    let session: ModelSession
    var keras: KerasModel { session.keras }
    var profile: ModelProfile { session.profile }
    var network: Network { session.network }
    var labels: [String]? { session.labels }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case npy, json
}

/// How an image input becomes the model's input (the model's profile decides by default).
struct InputOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Pixel scaling for image inputs: caffe, tf, torch, scale, none. Default: the model's profile, or detected from keras.applications model names.",
        valueName: "mode"))
    var preprocessing: String?

    @Option(name: .long, help: ArgumentHelp(
        "Resize method for image inputs: pil_bilinear (antialiased, the default) or pil_nearest (keras.utils.load_img's default, bit-exact).",
        valueName: "method"))
    var resize: String?

    func pipeline(for model: OpenedModel) throws -> InputPipeline {
        var p = try InputPipeline(profile: model.profile, model: model.keras)
        if let preprocessing {
            p.preprocessing = try InputPipeline.preprocessing(named: preprocessing)
            p.preprocessingSource = "--preprocessing"
        }
        if let resize { p.filter = try InputPipeline.filter(named: resize) }
        return p
    }
}

/// Reads an input: a PNG/JPEG image (decoded, resized and scaled for the model)
/// or a `.npy` array taken as already preprocessed. Gives it a batch dimension if it lacks one.
func readInput(_ path: String, for model: OpenedModel, options: InputOptions) throws -> Tensor {
    let url = URL(fileURLWithPath: path)
    guard FileManager.default.fileExists(atPath: url.path) else { throw CLIError("input file not found: \(path)") }
    if url.pathExtension.lowercased() != "npy" {
        let data = try Data(contentsOf: url)
        guard ImageFormat.detect(data) != nil else {
            throw CLIError("input \(path) is neither a PNG/JPEG image nor a .npy array")
        }
        return try options.pipeline(for: model).prepare(data).input
    }
    var x = try Tensor.readNPY(contentsOf: url)
    let want = model.network.inputShape
    if x.rank == want.count { x = x.reshaped([1] + x.shape) }
    let given = Array(x.shape.dropFirst())
    guard x.rank == want.count + 1,
          zip(given, want).allSatisfy({ $1 == -1 || $0 == $1 }) else {
        let wantText = "(" + want.map { $0 == -1 ? "any" : String($0) }.joined(separator: ", ") + ")"
        throw CLIError("input \(path) has shape \(x.shape); the model expects per-sample shape \(wantText)")
    }
    return x
}

/// Writes a tensor as .npy or JSON (`{"shape": [...], "data": [...]}`) to a file or stdout.
func writeTensor(_ t: Tensor, format: OutputFormat, to path: String?) throws {
    let data: Data
    switch format {
    case .npy:
        guard path != nil else { throw CLIError("--format npy needs -o FILE (binary output is not written to a terminal)") }
        data = t.npyData()
    case .json:
        let obj: [String: Any] = ["shape": t.shape, "data": t.scalars.map { Double($0) }]
        data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) + Data("\n".utf8)
    }
    if let path {
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    } else {
        FileHandle.standardOutput.write(data)
    }
}

/// The node whose output unit `k` a gradient starts from: the logits when the
/// model ends in softmax (unless the probability is asked for), else the output.
func scoreNode(of model: OpenedModel, postSoftmax: Bool) -> Int {
    model.session.scoreNode(postSoftmax: postSoftmax)
}

func resolveLayer(_ name: String, in model: OpenedModel) throws -> Int {
    if name == "input" { return 0 }
    if let id = model.network.layerIndex[name] { return id }
    let names = model.keras.layers.map(\.name).joined(separator: ", ")
    throw CLIError("no layer named '\(name)'. Layers: input, \(names)")
}

func printErr(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
