import CHDF5
import Engine
import Foundation
import ZIPFoundation

/// Which kind of Keras file a model came from.
public enum KerasFileFormat: String, Sendable, Codable, CaseIterable {
    /// tf.keras / tf_keras (Keras 2) `model.save("m.h5")`.
    case keras2HDF5 = "keras2-h5"
    /// Keras 3 `model.save("m.h5")` (the legacy HDF5 layout written by Keras 3).
    case keras3HDF5 = "keras3-h5"
    /// Keras 3 `model.save("m.keras")` (zip with config.json and model.weights.h5).
    case kerasZip = "keras3-zip"
}

/// One Keras layer of a loaded model.
public struct LayerSummary: Sendable, Codable, Equatable {
    public let name: String
    public let className: String
    /// Per-sample output shape (no batch axis); -1 marks a dimension that
    /// depends on the input size.
    public let outputShape: [Int]
    public let parameterCount: Int
    /// The output is a feature map `[h, w, c]`.
    public let isSpatial: Bool
    /// The engine node holding the layer's (post-activation) output.
    public let nodeId: Int
    /// Where the layer sits in the model tree: the names of the nested models
    /// it is in and its own, joined by "/" (`vgg16/block5_conv3`); its name
    /// at the top level. Every request that takes a layer accepts this path.
    public let path: String
    /// How many nested models the layer is inside (0 at the top level).
    public let depth: Int

    public init(
        name: String, className: String, outputShape: [Int], parameterCount: Int, nodeId: Int,
        path: String? = nil, depth: Int = 0
    ) {
        self.name = name
        self.className = className
        self.outputShape = outputShape
        self.parameterCount = parameterCount
        self.isSpatial = outputShape.count == 3
        self.nodeId = nodeId
        self.path = path ?? name
        self.depth = depth
    }
}

/// A whole model's summary, for JSON output.
public struct ModelSummary: Sendable, Codable, Equatable {
    public let name: String
    public let format: KerasFileFormat
    public let kerasVersion: String?
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let parameterCount: Int
    public let logitsNode: Int?
    public let layers: [LayerSummary]
}

/// Serialises this module's HDF5 use: Debian's libhdf5 is built thread-safe,
/// but other builds (e.g. Homebrew's) are not, and a load is rare enough.
private let hdf5Lock = NSLock()

/// A Keras model file loaded into an engine `Network`.
public struct KerasModel: Sendable {
    public let network: Network
    public let name: String
    public let format: KerasFileFormat
    public let kerasVersion: String?
    /// Every Keras layer, in the model config's order (the InputLayer first when there is one).
    public let layers: [LayerSummary]
    /// The node of the pre-activation output (the logits) when the model ends in a
    /// softmax or a sigmoid (a layer with `activation="softmax"` / `"sigmoid"`, or a final
    /// Activation / Softmax layer), else nil: a class score differentiated there does
    /// not saturate as the probability does (`head` says which function follows).
    public let logitsNode: Int?
    /// The function that turns `logitsNode`'s output into the model's output, when there is one.
    public let head: ClassifierHead?

    /// The layer called `name`, or at the path `name` in the model tree (`vgg16/block5_conv3`).
    public func layer(named name: String) -> LayerSummary? {
        layers.first { $0.name == name } ?? layers.first { $0.path == name }
    }

    /// Parameters of the whole model (a nested model's row, which sums its own layers, is not counted twice).
    public var parameterCount: Int {
        layers.filter { !Self.isModelClass($0.className) }.reduce(0) { $0 + $1.parameterCount }
    }

    /// Whether a layer row is a nested model (Sequential, Functional, Model).
    public static func isModelClass(_ className: String) -> Bool { ModelSpec.modelClasses.contains(className) }

    public var summary: ModelSummary {
        ModelSummary(
            name: name, format: format, kerasVersion: kerasVersion, inputShape: network.inputShape,
            outputShape: network.outputShape, parameterCount: parameterCount, logitsNode: logitsNode,
            layers: layers)
    }

    /// Loads a Keras 2 or Keras 3 `.h5` model or a Keras 3 `.keras` zip.
    /// Unsupported layers or options fail here, naming the layer.
    public static func load(contentsOf url: URL) throws -> KerasModel {
        try load(contentsOf: url, registry: .standard)
    }

    static func load(contentsOf url: URL, registry: LayerRegistry) throws -> KerasModel {
        let path = url.path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw KerasFormatError.unreadable(
                path: path,
                detail: "it is a directory (a TensorFlow SavedModel?); save the model with model.save(\"m.keras\") or model.save(\"m.h5\")")
        }
        let header: Data
        do {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            header = try handle.read(upToCount: 8) ?? Data()
        } catch {
            throw KerasFormatError.unreadable(path: path, detail: "\(error.localizedDescription)")
        }
        if header.isEmpty { throw KerasFormatError.emptyFile(path: path) }
        let bytes = [UInt8](header)
        let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        do {
            if bytes.starts(with: [0x50, 0x4B]) && bytes.count >= 4 && [3, 5, 7].contains(bytes[2]) {
                return try loadZip(url: url, registry: registry)
            }
            if bytes == hdf5Signature {
                return try loadHDF5(url: url, registry: registry)
            }
            if bytes.count < 8, hdf5Signature.starts(with: bytes) || [0x50, 0x4B, 0x03, 0x04].starts(with: bytes.prefix(4)) {
                throw KerasFormatError.truncated(path: path, detail: "only \(bytes.count) bytes, the start of an HDF5 or zip signature")
            }
            // HDF5 also allows a user block before the signature (at 512, 1024, ...).
            let isHDF5 = hdf5Lock.withLock { () -> Bool in
                convlens_h5_silence_errors()
                let result = H5Fis_hdf5(path) > 0
                _ = HDF5Error.capture("H5Fis_hdf5")  // clears the error stack
                return result
            }
            if isHDF5 { return try loadHDF5(url: url, registry: registry) }
            throw KerasFormatError.notAModelFile(path: path)
        } catch let error as HDF5Error {
            throw KerasFormatError.invalidFile("\(error)")
        }
    }

    // MARK: - HDF5

    private static func loadHDF5(url: URL, registry: LayerRegistry) throws -> KerasModel {
        try hdf5Lock.withLock { try loadHDF5Locked(url: url, registry: registry) }
    }

    private static func loadHDF5Locked(url: URL, registry: LayerRegistry) throws -> KerasModel {
        let file: HDF5File
        do {
            file = try HDF5File(url: url)
        } catch let error as HDF5Error {
            throw KerasFormatError.truncated(path: url.path, detail: error.detail.isEmpty ? "\(error)" : error.detail)
        }
        let root = try file.root
        guard try root.hasAttribute("model_config") else {
            if try root.exists("layers") || root.hasAttribute("layer_names") {
                throw KerasFormatError.invalidFile(
                    "'\(url.lastPathComponent)' holds weights only (no model_config); save the whole model with model.save(...)")
            }
            throw KerasFormatError.invalidFile("'\(url.lastPathComponent)' is an HDF5 file without a Keras model_config attribute")
        }
        let configText = try root.stringAttribute("model_config")
        let version = try root.hasAttribute("keras_version") ? try root.stringAttribute("keras_version") : nil
        let format: KerasFileFormat = (version?.hasPrefix("3") ?? false) ? .keras3HDF5 : .keras2HDF5
        let spec = try ModelSpec.parse(try JSON.parse(configText, what: "model_config"))
        let store = try LegacyHDF5WeightStore(root: root)
        return try assemble(spec: spec, store: store, format: format, version: version, registry: registry)
    }

    // MARK: - .keras zip

    private static func loadZip(url: URL, registry: LayerRegistry) throws -> KerasModel {
        let archive: Archive
        do {
            archive = try Archive(url: url, accessMode: .read)
        } catch {
            throw KerasFormatError.truncated(path: url.path, detail: "not a readable zip archive (\(error))")
        }
        func read(_ name: String) throws -> Data {
            guard let entry = archive[name] else {
                throw KerasFormatError.invalidFile("'\(url.lastPathComponent)' has no \(name); is it a Keras 3 .keras file?")
            }
            var data = Data()
            let crc: CRC32
            do {
                crc = try archive.extract(entry) { data.append($0) }
            } catch {
                throw KerasFormatError.truncated(path: url.path, detail: "cannot extract \(name) (\(error))")
            }
            // ZIPFoundation 0.9.20 computes the CRC-32 but does not compare it.
            guard crc == entry.checksum else {
                throw KerasFormatError.truncated(path: url.path, detail: "\(name) fails its CRC-32 check")
            }
            return data
        }
        let config = try JSON.parse(try read("config.json"), what: "config.json")
        var version: String?
        if archive["metadata.json"] != nil {
            version = try JSON.parse(try read("metadata.json"), what: "metadata.json")["keras_version"]?.string
        }
        let spec = try ModelSpec.parse(config)

        guard let weightsEntry = archive["model.weights.h5"] else {
            if archive["model.weights.json"] != nil {
                throw KerasFormatError.invalidFile(
                    "'\(url.lastPathComponent)' stores sharded weights (model.weights.json), which are not supported")
            }
            throw KerasFormatError.invalidFile("'\(url.lastPathComponent)' has no model.weights.h5")
        }
        // HDF5 reads a file: extract the weights to a private temporary file, removed afterwards.
        let temp = FileManager.default.temporaryDirectory
            .appendingPathComponent("convlens-\(UUID().uuidString)-model.weights.h5")
        defer { try? FileManager.default.removeItem(at: temp) }
        do {
            let crc = try archive.extract(weightsEntry, to: temp)
            // Checked before HDF5 parses it: libhdf5 1.10 is not hardened against damaged files.
            guard crc == weightsEntry.checksum else {
                throw KerasFormatError.truncated(path: url.path, detail: "model.weights.h5 fails its CRC-32 check")
            }
        } catch let error as KerasFormatError {
            throw error
        } catch let error as Archive.ArchiveError {
            throw KerasFormatError.truncated(path: url.path, detail: "cannot extract model.weights.h5 (\(error))")
        } catch {
            throw KerasFormatError.unreadable(
                path: url.path,
                detail: "cannot extract model.weights.h5 to \(temp.path): \(error.localizedDescription)")
        }
        return try hdf5Lock.withLock {
            try loadZipWeights(temp: temp, spec: spec, version: version, registry: registry, zipPath: url.path)
        }
    }

    /// Separate so every HDF5 handle of the temporary file is closed before it is removed.
    private static func loadZipWeights(
        temp: URL, spec: ModelSpec, version: String?, registry: LayerRegistry,
        zipPath: String
    ) throws -> KerasModel {
        let file: HDF5File
        do {
            file = try HDF5File(url: temp)
        } catch let error as HDF5Error {
            throw KerasFormatError.truncated(path: zipPath, detail: "model.weights.h5: \(error.detail)")
        }
        let store = try ZipWeightStore(root: try file.root, spec: spec)
        return try assemble(spec: spec, store: store, format: .kerasZip, version: version, registry: registry)
    }

    // MARK: - assembly

    static func assemble(
        spec: ModelSpec, store: WeightStore, format: KerasFileFormat, version: String?,
        registry: LayerRegistry
    ) throws -> KerasModel {
        // A .keras zip is always Keras 3; a legacy HDF5 file says which Keras wrote it
        // (files without a version predate Keras 3).
        let major = format == .kerasZip ? 3 : (version?.split(separator: ".").first.flatMap { Int($0) } ?? 2)
        let result = try GraphBuilder(spec: spec, weights: store, registry: registry, kerasMajorVersion: major).build()
        let network = result.network
        let output = network.nodes[network.outputNode]
        let head = (output.layer as? Activation).flatMap { ClassifierHead($0.function) }
        return KerasModel(
            network: network, name: spec.name, format: format, kerasVersion: version,
            layers: result.layers, logitsNode: head == nil ? nil : output.inputs.first, head: head)
    }

    // MARK: - summary text

    /// An aligned text table: layer, class, output shape, parameters, node, and
    /// "yes" under Map when the output is a spatial feature map; then totals.
    public func summaryTable() -> String {
        func shape(_ s: [Int]) -> String {
            "(" + s.map { $0 < 0 ? "None" : String($0) }.joined(separator: ", ") + (s.count == 1 ? ",)" : ")")
        }
        let header = ["Layer", "Class", "Output shape", "Params", "Node", "Map"]
        // A nested model's layers are indented under it, by their own names
        // (their paths, e.g. `vgg16/block5_conv3`, address them anywhere).
        var rows = layers.map {
            [
                String(repeating: "  ", count: $0.depth)
                    + ($0.depth > 0 ? ($0.path.split(separator: "/").last.map(String.init) ?? $0.name) : $0.name),
                $0.className, shape($0.outputShape), String($0.parameterCount), String($0.nodeId), $0.isSpatial ? "yes" : "",
            ]
        }
        rows.insert(header, at: 0)
        let widths = (0..<header.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.enumerated().map { c, text in
                // Numbers right-aligned, text left-aligned.
                let pad = String(repeating: " ", count: widths[c] - text.count)
                return c == 3 || c == 4 ? pad + text : text + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        let rule = String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1))
        var out = ["Model '\(name)' (\(format.rawValue)\(kerasVersion.map { ", Keras \($0)" } ?? ""))", line(rows[0]), rule]
        out += rows.dropFirst().map(line)
        out.append(rule)
        out.append(
            "Input \(shape(network.inputShape)) → output \(shape(network.outputShape)); \(parameterCount) parameters"
                + (logitsNode.map { "; logits at node \($0)" } ?? ""))
        return out.joined(separator: "\n") + "\n"
    }
}
