import Foundation

/// How to use a model: the ConvLens profile that travels beside a Keras file
/// (`models/efficientnet_lite0.json` for the bundled model; keys documented in
/// models/README.md). The Keras file says what the network computes; the
/// profile says what it expects to be fed and what its outputs mean.
public struct ModelProfile: Sendable, Equatable {
    /// Display name.
    public var name: String
    /// The Keras model file (.h5 or .keras).
    public var modelURL: URL
    /// Where the profile came from, when it came from a file.
    public var profileURL: URL?
    /// Input height and width the model was trained at, when known.
    public var inputSize: [Int]?
    /// Resize method name for photos (e.g. `pil_bilinear`, `pil_nearest`).
    public var resize: String?
    public var preprocessing: Preprocessing?
    /// Class names by output index, when the model has them.
    public var labels: [String]?

    /// Input scaling as keras.applications names it, or a custom affine map.
    public struct Preprocessing: Sendable, Equatable, Codable {
        /// `caffe`, `tf`, `torch`, `scale`, `none` or `custom` (x × scale + offset).
        public var mode: String
        public var scale: Double?
        public var offset: Double?

        public init(mode: String, scale: Double? = nil, offset: Double? = nil) {
            self.mode = mode
            self.scale = scale
            self.offset = offset
        }
    }

    /// A profile with nothing but the model file.
    public init(modelURL: URL) {
        self.name = modelURL.deletingPathExtension().lastPathComponent
        self.modelURL = modelURL
    }

    /// Reads a profile JSON; relative paths in it are relative to the profile's folder.
    public static func read(contentsOf url: URL) throws -> ModelProfile {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelProfileError.invalid(url.path, "cannot be read: \(error.localizedDescription)")
        }
        let raw: Raw
        do { raw = try JSONDecoder().decode(Raw.self, from: data) } catch {
            throw ModelProfileError.invalid(url.path, "is not a valid ConvLens model profile: \(error)")
        }
        let folder = url.deletingLastPathComponent()
        var profile = ModelProfile(modelURL: folder.appendingPathComponent(raw.model))
        profile.profileURL = url
        profile.name = raw.name ?? profile.name
        profile.inputSize = raw.input_size
        profile.resize = raw.resize
        profile.preprocessing = raw.preprocessing
        if let labelsFile = raw.labels {
            let labelsURL = folder.appendingPathComponent(labelsFile)
            guard let text = try? String(contentsOf: labelsURL, encoding: .utf8) else {
                throw ModelProfileError.invalid(url.path, "names a labels file that cannot be read: \(labelsURL.path)")
            }
            profile.labels = text.split(separator: "\n", omittingEmptySubsequences: false)
                .map { String($0) }.filter { !$0.isEmpty }
        }
        return profile
    }

    /// Resolves what a user named: a profile (.json), or a model file with an
    /// optional profile `<stem>.json` beside it that names this model.
    public static func resolve(_ url: URL) throws -> ModelProfile {
        if url.pathExtension.lowercased() == "json" { return try read(contentsOf: url) }
        let sidecar = url.deletingPathExtension().appendingPathExtension("json")
        if FileManager.default.fileExists(atPath: sidecar.path),
            let profile = try? read(contentsOf: sidecar),
            profile.modelURL.standardizedFileURL.path == url.standardizedFileURL.path
        {
            return profile
        }
        return ModelProfile(modelURL: url)
    }

    private struct Raw: Decodable {
        var name: String?
        var model: String
        var input_size: [Int]?
        var resize: String?
        var preprocessing: Preprocessing?
        var labels: String?
    }
}

extension ModelProfile {
    /// The bundled default model's profile, looked for in this order:
    /// `$CONVLENS_MODEL` (a profile or a model file), `./models/efficientnet_lite0.json`,
    /// and `models/` next to the executable's package checkout (…/.build/<config>/convlens).
    public static func bundledDefault(executable: URL? = nil) -> URL? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["CONVLENS_MODEL"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        let name = "models/efficientnet_lite0.json"
        var candidates = [URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent(name)]
        if let exe = executable?.resolvingSymlinksInPath() {
            var dir = exe.deletingLastPathComponent()
            for _ in 0..<5 {
                candidates.append(dir.appendingPathComponent(name))
                dir = dir.deletingLastPathComponent()
            }
        }
        return candidates.first { fm.fileExists(atPath: $0.path) }
    }
}

public enum ModelProfileError: Error, CustomStringConvertible, Equatable {
    case invalid(String, String)

    public var description: String {
        switch self {
        case .invalid(let path, let detail): return "model profile '\(path)' \(detail)"
        }
    }
}
