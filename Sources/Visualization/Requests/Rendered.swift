import Engine
import Foundation

/// The encodings a picture request can ask for.
public enum OutputFormat: String, Sendable, Codable, CaseIterable {
    /// The picture.
    case png
    /// The numbers behind it as a NumPy array (a map, activations, final input images).
    case npy
    /// A JSON document (each request type says which).
    case json

    public var contentType: String {
        switch self {
        case .png: return "image/png"
        case .npy: return "application/octet-stream"
        case .json: return "application/json; charset=utf-8"
        }
    }
}

/// A rendered request: the bytes in the asked format, and the facts about them that a
/// front end shows beside the bytes (HTTP `X-<name>` headers, CLI messages), in order.
public struct Rendered: Sendable {
    public var body: Data
    public var format: OutputFormat
    public var facts: [Fact]

    public init(body: Data, format: OutputFormat, facts: [Fact] = []) {
        self.body = body
        self.format = format
        self.facts = facts
    }

    /// The value of a fact by name.
    public subscript(fact name: String) -> String? { facts.first { $0.name == name }?.value }
}

/// One named fact about a rendered picture (`Class: 281`, `Layer: top_activation`).
public struct Fact: Sendable, Codable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    /// `Numerics: fast` for an answer computed with fast numerics; nothing for exact (the default).
    public static func numerics(_ numerics: Numerics?) -> [Fact] {
        Numerics.canonical(numerics).map { [Fact("Numerics", $0.rawValue)] } ?? []
    }
}

/// What a request renders from: image bytes (PNG/JPEG, decoded and prepared for the
/// model), an already-preprocessed model input (a `.npy` given to the CLI), or a
/// collection of files (what a dataset index is built from).
public enum RenderInput: Sendable {
    case image(Data)
    case tensor(Tensor)
    case files(FileCollection)
}

extension RenderInput {
    /// What a request on one image or model input answers to a collection of files.
    static let notOneImage = RequestError.unsupported("a collection of files is not one image or model input")
}

/// A collection's files, read by their listed name when the work needs them (the
/// server's dataset folders): only the process that listed them can read them.
public struct FileCollection: Sendable {
    public let read: @Sendable (DatasetFile) throws -> Data

    public init(read: @escaping @Sendable (DatasetFile) throws -> Data) { self.read = read }
}

/// Limits a front end sets on the cost of one request.
public struct RenderLimits: Sendable {
    /// Decoded pixels an uploaded image may have (checked from its header, before decoding).
    public var maxImagePixels: Int
    /// Pixels of an overlay: a larger photo is drawn scaled down to fit (aspect kept).
    public var maxOverlayPixels: Int
    /// Model passes one heatmap may cost (`CAMMethod.passes`: Grad-CAM 1, Score-CAM one per
    /// channel of the layer); a dearer request is refused before it runs.
    public var maxHeatmapPasses: Int
    /// Model passes one comparison of methods may cost in all (`CompareRequest.passes`).
    public var maxComparePasses: Int
    /// Bytes one request may hold at its peak (`MemoryEstimate`); a dearer request is
    /// refused before it runs.
    public var maxRequestBytes: Int
    /// Bytes one stored result may have (a comparison's document, estimated from its methods
    /// and overlay size); a request whose result could be larger is refused before it runs.
    public var maxDocumentBytes: Int

    public init(
        maxImagePixels: Int = 50_000_000, maxOverlayPixels: Int = 50_000_000, maxHeatmapPasses: Int = .max,
        maxComparePasses: Int = .max, maxRequestBytes: Int = .max, maxDocumentBytes: Int = .max
    ) {
        self.maxImagePixels = maxImagePixels
        self.maxOverlayPixels = maxOverlayPixels
        self.maxHeatmapPasses = maxHeatmapPasses
        self.maxComparePasses = maxComparePasses
        self.maxRequestBytes = maxRequestBytes
        self.maxDocumentBytes = maxDocumentBytes
    }
}

extension JSONEncoder {
    /// Sorted keys: the JSON documents ConvLens writes are byte-stable.
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}

/// A JSON document with a trailing newline (what the server and the CLI write).
func jsonDocument(_ value: some Encodable) throws -> Data {
    try JSONEncoder.sorted.encode(value) + Data([0x0A])
}
