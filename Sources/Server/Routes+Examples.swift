import Foundation
import Hummingbird
import Imaging
import Visualization

/// `GET /filters/{layer}/{index}/examples`: the dataset images that excite one filter
/// most (from the index of `gallery.dataset_dir`), as a PNG strip of receptive-field
/// crops or as JSON. While the index is being built it answers like the filter routes:
/// waits up to `wait` seconds, then 202 with the job.
extension Routes {
    static let examplePatchRange = 16...256

    func examples(_ request: Request, layer: String, index: String) async throws -> Response {
        let query = Query(request)
        guard let channel = Int(index) else {
            throw RequestError.badParameter(name: "index", value: index, allowed: "it is not an integer; give a filter index from 0")
        }
        let format = try query.choice("format", default: OutputFormat.png, among: [OutputFormat.png, .json])
        let k = try query.int("k", default: settings.datasetK, in: 1...settings.datasetK)
        let patch = try query.int("patch", default: 96, in: Self.examplePatchRange)
        let wait = try query.double("wait", default: settings.jobWaitSeconds, in: 0...300)
        // The layer and the filter are checked before any index is looked for.
        let summary = try session.spatialLayer(named: layer)
        let indexed = session.galleryLayers.map { $0.target.name }
        guard indexed.contains(summary.name) else {
            throw RequestError.unsupported(
                "'\(summary.name)' is not indexed for dataset examples; the indexed layers are the gallery's: \(indexed.joined(separator: ", "))"
            )
        }
        let channels = summary.outputShape.last ?? 0
        guard channel >= 0, channel < channels else {
            throw RequestError.outOfRange("filter \(channel) out of range: '\(summary.name)' has \(channels) filters (0...\(channels - 1))")
        }
        let resultPath = request.uri.path
        var state = try await service.datasetIndex.current(service, result: resultPath)
        if case .building(let job, _) = state {
            let status = try await service.jobs.wait(job.id, seconds: wait) ?? job
            guard status.state == .done else { return try unfinished(status) }
            state = try await service.datasetIndex.current(service, result: resultPath)
        }
        guard case .ready(let datasetIndex, let address, let listing) = state else {
            // The folder changed again while the index was built: the new one is being built.
            guard case .building(let job, _) = state else { throw VisualizationError.invalid("unreachable") }
            return try unfinished(job)
        }
        let examples = Array((datasetIndex.layers[summary.name]?[channel] ?? []).prefix(k))
        let facts = [
            Fact("Layer", summary.name), Fact("Filter", String(channel)), Fact("Examples", String(examples.count)),
            Fact("Dataset-Index", String(address.hex.prefix(16))), Fact("Dataset-Images", String(datasetIndex.images.count)),
        ]
        let strip = ExamplesStripKey(index: address.hex, layer: summary.name, filter: channel, k: k, patch: patch, format: format)
        let stripAddress = ContentAddress(kind: "dataset-examples", model: service.modelDigest, request: strip.json, image: nil)
        if entityTags(request).matches(stripAddress.etag) { return notModified(stripAddress.etag) }
        switch format {
        case .json:
            let body = try examplesBody(
                examples, layer: summary.name, filter: channel, index: datasetIndex, address: address, listing: listing)
            return respond(try JSONEncoder.api.encode(body) + [0x0A], format: .json, etag: stripAddress.etag, facts: facts)
        default:
            if let png = try await service.results.result(for: stripAddress.hex) {
                return respond(png, format: .png, etag: stripAddress.etag, facts: facts + [Fact("Cache", "hit")])
            }
            guard !examples.isEmpty else {
                throw RequestError.unsupported("no image of the dataset has a pixel in the receptive field of filter \(channel)")
            }
            let (session, cache) = (self.session, service.cache)
            let png = try await service.executor.run(.interactive) { () -> Data in
                let picture = try session.examplesStrip(
                    examples,
                    image: { name in
                        guard let url = listing.paths[name] else { throw RequestError.unsupported("\(name) is no longer in the dataset") }
                        return try Data(contentsOf: url)
                    }, patch: patch)
                let png = try encodePNG(picture)
                cache.put(stripAddress.hex, png)
                return png
            }
            return respond(png, format: .png, etag: stripAddress.etag, facts: facts + [Fact("Cache", "miss")])
        }
    }

    /// What identifies one strip (or JSON answer): the index's address and the parameters.
    struct ExamplesStripKey: Encodable {
        var index: String
        var layer: String
        var filter, k, patch: Int
        var format: OutputFormat

        var json: Data {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return (try? encoder.encode(self)) ?? Data()
        }
    }

    func examplesBody(
        _ examples: [UnitExample], layer: String, filter: Int, index: DatasetIndex, address: ContentAddress,
        listing: DatasetFolders.Listing
    ) throws -> ExamplesBody {
        let pipeline = try session.imagePipeline()
        let ids = Dictionary(index.images.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        func box(_ b: [Int]) -> ExamplesBody.Box { ExamplesBody.Box(top: b[0], left: b[1], bottom: b[2], right: b[3]) }
        return ExamplesBody(
            layer: layer, filter: filter, k: index.k,
            dataset: .init(
                index: address.hex, images: index.images.count, folders: service.datasetIndex.folders.folders.map(\.lastPathComponent)),
            input: .init(width: pipeline.width, height: pipeline.height),
            examples: examples.enumerated().map { rank, e in
                let id = ids[e.image] ?? -1
                let size = id >= 0 ? index.sizes[id] : [pipeline.width, pipeline.height]
                return ExamplesBody.Example(
                    rank: rank, value: e.value,
                    image: .init(id: id, name: e.image, url: listing.urls[e.image], width: size[0], height: size[1]),
                    position: .init(row: e.row, column: e.column), box: box(e.box),
                    image_box: box(pipeline.imageBox(e.box, imageWidth: size[0], imageHeight: size[1])))
            })
    }

    struct ExamplesBody: Encodable {
        struct Dataset: Encodable {
            /// The index's content address, and how many images it holds.
            var index: String
            var images: Int
            /// Each folder by its name, as the images' names begin (never its place on the server).
            var folders: [String]
        }
        struct Size: Encodable { var width, height: Int }
        struct Image: Encodable {
            /// The image's place in the index (sorted listing of the folders).
            var id: Int
            var name: String
            /// Where the gallery serves it, when the folder is inside its public directory.
            var url: String?
            var width, height: Int
        }
        struct Position: Encodable { var row, column: Int }
        /// Inclusive pixel bounds.
        struct Box: Encodable { var top, left, bottom, right: Int }
        struct Example: Encodable {
            var rank: Int
            var value: Float
            var image: Image
            /// The feature-map position of the filter's peak in that image.
            var position: Position
            /// Its receptive field in model-input pixels, and in the image's own pixels.
            var box: Box
            var image_box: Box
        }
        var layer: String
        var filter, k: Int
        var dataset: Dataset
        /// The model input size the boxes are in.
        var input: Size
        var examples: [Example]
    }
}
