import Foundation
import Imaging

/// One file of an image collection as its index sees it: the name it is known by, its
/// size and the SHA-256 of its bytes.
public struct DatasetFile: Sendable, Codable, Hashable {
    public var name: String
    public var bytes: Int
    public var sha256: String

    public init(name: String, bytes: Int, sha256: String) {
        self.name = name
        self.bytes = bytes
        self.sha256 = sha256
    }
}

/// The dataset examples index of a collection (the server's `gallery.dataset_dir`): one
/// forward pass per file, the top-k of every channel of `layers`. Its content address
/// (model digest, this request with the listing — names, sizes, digests — and k) is
/// where the stored index lives, so a changed model or folder gives a new index and an
/// unchanged one is found again after a restart.
public struct DatasetIndexRequest: RenderRequest {
    public static let kind = "dataset-index"

    public var k = 9
    /// nil: the gallery's layers (each convolution's activated output). Canonical: the names, in model order.
    public var layers: [String]?
    /// In the order indexed (the server sorts by name).
    public var files: [DatasetFile]

    public static let kRange = 1...64

    public init(files: [DatasetFile], k: Int = 9, layers: [String]? = nil) {
        self.files = files
        self.k = k
        self.layers = layers
    }

    public func canonical(for session: ModelSession) throws -> DatasetIndexRequest {
        var r = self
        try RequestError.check("k", k, in: Self.kRange)
        guard !files.isEmpty else { throw RequestError.unsupported("the image collection is empty: no PNG or JPEG files") }
        let summaries = try (layers ?? session.galleryLayers.map { $0.target.name }).map { try session.spatialLayer(named: $0) }
        var seen = Set<String>()
        r.layers = summaries.sorted { $0.nodeId < $1.nodeId }.map(\.name).filter { seen.insert($0).inserted }
        return r
    }
}

extension DatasetIndexRequest {
    /// The index in its binary form (`DatasetIndex.serialized`), each file read from
    /// `input`'s collection.
    public func render(
        on session: ModelSession, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        guard case .files(let collection) = input else {
            throw VisualizationError.invalid("a dataset index is built from a collection of files")
        }
        let index = try session.buildDatasetIndex(
            self, limits: limits, read: collection.read,
            progress: { progress(RenderProgress(step: $0.done, steps: $0.of, meanLoss: .nan)) })
        // Bytes nobody is served as npy: the format only names their content type (octet-stream).
        return Rendered(body: try index.serialized(), format: .npy, facts: [Fact("Images", String(index.images.count))])
    }

    public static var jobKinds: [String] { ["dataset_index"] }

    /// A job in the process that has the files, at the priority of one filter (someone
    /// is waiting for an examples strip); its result link is the route that waits on it.
    public func jobPolicy(address: ContentAddress, background: Bool) -> JobPolicy? {
        JobPolicy(
            kind: "dataset_index", priority: .interactive, steps: files.count,
            summary: "dataset examples index of \(files.count) images, top \(k) of \(layers?.count ?? 0) layers",
            resultPath: nil, staysInProcess: true)
    }
}

/// Progress of an index: images done of all.
public typealias DatasetIndexProgress = (done: Int, of: Int)

extension ModelSession {
    /// Builds the index: each file read with `read`, checked against its listed digest
    /// (a file changed since it was listed stops the build: the index would not be the
    /// one its address names), then one forward pass. `progress` after each image;
    /// returning false cancels (`VisualizationError.cancelled`).
    public func buildDatasetIndex(
        _ request: DatasetIndexRequest, limits: RenderLimits = RenderLimits(), read: (DatasetFile) throws -> Data,
        progress: (DatasetIndexProgress) -> Bool = { _ in true }
    ) throws -> DatasetIndex {
        let r = try request.canonical(for: self)
        var index = DatasetIndex(k: r.k)
        for (i, file) in r.files.enumerated() {
            let data = try read(file)
            guard data.count == file.bytes, SHA256Digest.hex([data]) == file.sha256 else {
                throw RequestError.unsupported("\(file.name) changed while the dataset was being indexed; ask again")
            }
            try addToDatasetIndex(&index, name: file.name, imageData: data, layers: r.layers ?? [], limits: limits)
            guard progress((i + 1, r.files.count)) else { throw VisualizationError.cancelled }
        }
        return index
    }
}

extension InputPipeline {
    /// A box in model-input pixels (inclusive [top, left, bottom, right]) in the pixels of
    /// the original image of `width × height` it was resized (and centre-cropped) from:
    /// the smallest box of whole image pixels that covers it.
    public func imageBox(_ box: [Int], imageWidth: Int, imageHeight: Int) -> [Int] {
        let source =
            centreCrop
            ? Image.kerasCentreCropBox(width: imageWidth, height: imageHeight, targetWidth: width, targetHeight: height)
            : PixelBox(x0: 0, y0: 0, x1: imageWidth, y1: imageHeight)
        func map(_ lo: Int, _ hi: Int, size: Int, from: Int, span: Int) -> (Int, Int) {
            // Model pixel p covers source [from + p·span/size, from + (p+1)·span/size).
            let a = from + lo * span / size
            let b = from + ((hi + 1) * span + size - 1) / size - 1
            return (a, max(a, b))
        }
        let (top, bottom) = map(box[0], box[2], size: height, from: source.y0, span: source.height)
        let (left, right) = map(box[1], box[3], size: width, from: source.x0, span: source.width)
        return [top, left, bottom, right]
    }
}
