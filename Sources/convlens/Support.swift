import ArgumentParser
import Engine
import Foundation
import Imaging
import KerasFormat
import Visualization

/// Options every command that reads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
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
            throw CLIError(
                "no --model given and the bundled model (models/efficientnet_lite0.json) was not found; run from the ConvLens checkout or set CONVLENS_MODEL"
            )
        }
        return try ModelProfile.resolve(url)
    }

    /// Loads the model; `input` overrides how images are prepared for it (its profile's
    /// resize and preprocessing).
    func load(_ input: InputOptions? = nil) throws -> OpenedModel {
        if let threads {
            guard threads >= 1 else { throw CLIError("--threads must be at least 1") }
            ComputeThreads.set(threads)
        }
        var profile = try profile()
        guard FileManager.default.fileExists(atPath: profile.modelURL.path) else {
            throw CLIError("model file not found: \(profile.modelURL.path)")
        }
        if let preprocessing = input?.preprocessing {
            _ = try InputPipeline.preprocessing(named: preprocessing)
            profile.preprocessing = ModelProfile.Preprocessing(mode: preprocessing)
        }
        if let resize = input?.resize {
            _ = try InputPipeline.filter(named: resize)
            profile.resize = resize
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

enum TensorFormat: String, ExpressibleByArgument, CaseIterable {
    case npy, json
}

/// `--numerics`: how closely the command's convolutions follow the direct sums.
struct NumericsOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "exact (default): direct convolutions, the results compared with Keras; fast: Winograd for wide 3×3 stride-1 convolutions where this CPU has it (the same results to float rounding; docs/performance.md, fast numerics).",
            valueName: "exact|fast"))
    var numerics: Numerics = .exact
}

/// How an image input becomes the model's input (the model's profile decides by default).
struct InputOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Pixel scaling for image inputs: caffe, tf, torch, scale, none. Default: the model's profile, or detected from keras.applications model names.",
            valueName: "mode"))
    var preprocessing: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Resize method for image inputs: pil_bilinear (antialiased, the default) or pil_nearest (keras.utils.load_img's default, bit-exact).",
            valueName: "method"))
    var resize: String?
}

/// An input file as a request input: a PNG/JPEG image, or a `.npy` array taken as
/// already preprocessed.
func renderInput(_ path: String) throws -> RenderInput {
    let url = URL(fileURLWithPath: path)
    guard FileManager.default.fileExists(atPath: url.path) else { throw CLIError("input file not found: \(path)") }
    if url.pathExtension.lowercased() == "npy" { return .tensor(try Tensor.readNPY(contentsOf: url)) }
    let data = try Data(contentsOf: url)
    guard ImageFormat.detect(data) != nil else {
        throw CLIError("input \(path) is neither a PNG/JPEG image nor a .npy array")
    }
    return .image(data)
}

/// The model input for an input file (decoded, resized and scaled, or checked), with a batch axis.
func readInput(_ path: String, for model: OpenedModel) throws -> Tensor {
    try model.session.prepare(try renderInput(path), limits: RenderLimits()).input
}

/// Writes a rendered result to a file, or a JSON one to stdout without `-o`.
func write(_ rendered: Rendered, to path: String?) throws {
    if let path {
        try rendered.body.write(to: URL(fileURLWithPath: path), options: .atomic)
    } else if rendered.format == .json {
        FileHandle.standardOutput.write(rendered.body)
    } else {
        throw CLIError("\(rendered.format.rawValue.uppercased()) output needs -o FILE (binary output is not written to a terminal)")
    }
}

/// Writes a tensor as .npy or JSON (`{"shape": [...], "data": [...]}`) to a file or stdout.
func writeTensor(_ t: Tensor, format: TensorFormat, to path: String?) throws {
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

/// An engine node by name (a Keras layer, or an internal node such as `NAME/depthwise`), or `input`.
func resolveLayer(_ name: String, in model: OpenedModel) throws -> Int {
    if name == "input" { return 0 }
    if let id = model.network.layerIndex[name] { return id }
    return try model.session.layer(named: name).nodeId
}

func printErr(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
