import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Imaging
import KerasFormat
import Visualization

/// The HTTP surface (documented in public/openapi.yaml). Handlers parse and check
/// parameters, hand the work to the compute executor or the job queue, and shape the
/// response; no picture is made here.
struct Routes: Sendable {
    let service: ConvLensService

    var settings: ServerSettings { service.settings }
    var session: ModelSession { service.session }

    /// A route as registered (path in the router's `:name` syntax).
    struct Endpoint: Sendable, Hashable {
        var method: String
        var path: String
    }

    /// Registers every route; returns them, so a test can check each is documented.
    @discardableResult
    func register(on router: Router<BasicRequestContext>) -> [Endpoint] {
        var endpoints: [Endpoint] = []
        func add(_ method: HTTPRequest.Method, _ path: String,
                 _ handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> Response) {
            router.on(RouterPath(path), method: method, use: handler)
            endpoints.append(Endpoint(method: method.rawValue, path: path))
        }
        add(.get, "/healthz") { _, _ in try json(["status": "ok"]) }
        add(.get, "/readyz") { _, _ in try readiness() }
        add(.get, "/metrics") { _, _ in metrics() }
        add(.get, "/api/model") { _, _ in try model() }
        add(.post, "/api/predict") { request, _ in try await predict(request) }
        add(.post, "/heatmap") { request, _ in try await heatmap(request) }
        add(.post, "/activations") { request, _ in try await activations(request) }
        // A nested layer's path (`vgg16/block5_conv3`) travels as one segment, its "/" as %2F.
        @Sendable func layerParameter(_ context: some RequestContext) -> String {
            let raw = context.parameters.get("layer")!
            return raw.removingPercentEncoding ?? raw
        }
        add(.get, "/filters/:layer/:index") { request, context in
            try await filter(request, layer: layerParameter(context), index: context.parameters.get("index")!)
        }
        add(.get, "/filters/:layer") { request, context in
            try await filterGrid(request, layer: layerParameter(context))
        }
        add(.get, "/jobs/:id") { _, context in try job(context.parameters.get("id")!) }
        add(.delete, "/jobs/:id") { _, context in try cancelJob(context.parameters.get("id")!) }
        add(.get, "/jobs/:id/events") { _, context in try jobEvents(context.parameters.get("id")!) }
        // Read once: the document ships with the gallery and does not change while serving.
        let openAPI = try? Data(contentsOf: URL(fileURLWithPath: settings.publicDir).appendingPathComponent("openapi.yaml"))
        add(.get, "/openapi.yaml") { _, _ in
            guard let openAPI else { throw APIError.notFound("openapi.yaml is not in \(settings.publicDir) (server.public_dir)") }
            return Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8", .cacheControl: "no-cache"],
                            body: .init(byteBuffer: ByteBuffer(bytes: openAPI)))
        }
        return endpoints
    }

    // MARK: - Health and metrics

    func readiness() throws -> Response {
        guard service.ready.load(ordering: .relaxed) else {
            throw APIError(.serviceUnavailable, "not_ready", "the server is shutting down")
        }
        let (waiting, running) = service.executor.load
        let counts = service.jobs.counts
        return try json(ReadyBody(status: "ready", model: session.profile.name, pending_computations: waiting,
                                  running_computations: running, queued_jobs: counts.queued, running_jobs: counts.running))
    }

    struct ReadyBody: Encodable {
        var status: String
        var model: String
        var pending_computations: Int
        var running_computations: Int
        var queued_jobs: Int
        var running_jobs: Int
    }

    func metrics() -> Response {
        service.metrics.pendingComputations.set(to: Double(service.executor.load.waiting))
        let counts = service.jobs.counts
        service.metrics.queueDepth.set(to: Double(counts.queued))
        service.metrics.runningJobs.set(to: Double(counts.running))
        let text = service.metrics.registry.emitToBuffer()
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }

    // MARK: - Model

    func model() throws -> Response {
        let keras = session.keras
        let pipeline = try session.imagePipeline()
        let defaultLayer = defaultCAMLayer(of: keras)?.name
        let activated = Dictionary(service.galleryLayers.map { ($0.convolution.name, $0.target.name) }, uniquingKeysWith: { a, _ in a })
        let layers = keras.layers.map { l in
            ModelBody.Layer(name: l.name, path: l.path, depth: l.depth, class_name: l.className, output_shape: l.outputShape,
                            parameters: l.parameterCount, nested_model: KerasModel.isModelClass(l.className),
                            spatial: l.isSpatial, convolution: activated[l.name] != nil,
                            filters: l.isSpatial && l.nodeId > 0 ? l.outputShape.last : nil,
                            activated_output: activated[l.name])
        }
        let body = ModelBody(
            name: session.profile.name, keras_name: keras.name, format: keras.format.rawValue, keras_version: keras.kerasVersion,
            sha256: service.modelDigest,
            input: .init(height: pipeline.height, width: pipeline.width, channels: session.network.inputShape[2],
                         resize: session.profile.resize ?? "pil_bilinear",
                         preprocessing: "\(pipeline.preprocessing)", preprocessing_source: pipeline.preprocessingSource),
            classes: session.classCount, labels: session.labels != nil, default_heatmap_layer: defaultLayer,
            cam_methods: CAMMethod.allCases.map(\.rawValue), colormaps: Colormap.allCases.map(\.rawValue),
            cam_method_info: CAMMethod.allCases.map { m in
                .init(name: m.rawValue, uses_layer: m.weightsALayer,
                      passes: m.passes(layerChannels: defaultCAMLayer(of: keras)?.outputShape.last ?? 0))
            },
            filter_defaults: .init(method: "book", steps_book: FilterMethod.book.defaultSteps, steps_lucid: FilterMethod.lucid.defaultSteps,
                                   size: settings.filterSize, max_steps: settings.filterMaxSteps, max_count: settings.filterMaxCount,
                                   gallery_count: settings.galleryCount, gallery_cols: ConvLensService.galleryColumns),
            layers: layers)
        return try json(body, cacheable: true)
    }

    struct ModelBody: Encodable {
        struct Input: Encodable {
            var height, width, channels: Int
            var resize, preprocessing, preprocessing_source: String
        }
        struct FilterDefaults: Encodable {
            var method: String
            var steps_book, steps_lucid, size, max_steps, max_count: Int
            /// What the gallery's grids use (gallery.count; columns fixed), so a page asking
            /// the same gets the pre-rendered grids from the cache.
            var gallery_count, gallery_cols: Int
        }
        struct CAMMethodInfo: Encodable {
            var name: String
            /// false: the method works on the input pixels (saliency family); `layer` is ignored.
            var uses_layer: Bool
            /// Model passes one heatmap costs at the default layer, roughly (Grad-CAM = 1).
            var passes: Int
        }
        struct Layer: Encodable {
            /// `name` addresses the layer; `path` too (`outer/inner` for a layer inside a nested model, at `depth` > 0).
            var name, path: String
            var depth: Int
            var class_name: String
            var output_shape: [Int]
            /// A nested model's row counts its layers' parameters, which have their own rows.
            var parameters: Int
            var nested_model: Bool
            var spatial, convolution: Bool
            var filters: Int?
            /// Convolutions: the layer after its own BatchNorm/activation, whose filters the gallery shows.
            var activated_output: String?
        }
        var name, keras_name, format: String
        var keras_version: String?
        var sha256: String
        var input: Input
        var classes: Int
        var labels: Bool
        var default_heatmap_layer: String?
        var cam_methods, colormaps: [String]
        var cam_method_info: [CAMMethodInfo]
        var filter_defaults: FilterDefaults
        var layers: [Layer]
    }

    // MARK: - Predictions, heatmaps, activations

    func predict(_ request: Request) async throws -> Response {
        let q = Query(request)
        let top = try q.int("top", default: 5, in: 1...1000)
        let image = try await UploadedImage.read(request, maxBytes: settings.maxBodyBytes)
        let etag = strongETag(service.key("predict", "top=\(top)", image: image))
        if matches(request, etag) { throw preconditionFailed(etag) }
        let session = self.session
        let maxPixels = settings.maxImagePixels
        let predictions = try await service.executor.run(.interactive) {
            let input = try session.imagePipeline().prepare(image, maxPixels: maxPixels).input
            return try session.predict(input, top: top)
        }
        return try json(PredictBody(model: session.profile.name, top: predictions), etag: etag)
    }

    struct PredictBody: Encodable {
        var model: String
        var top: [Prediction]
    }

    func heatmap(_ request: Request) async throws -> Response {
        let q = Query(request)
        let method: CAMMethod = try q.choice("method", default: .gradcam)
        let alpha = try q.float("alpha", default: 0.4, in: 0...1)
        let colormap: Colormap = try q.choice("colormap", default: .jet)
        let format = try q.choice("format", default: "png", among: ["png", "json"])
        let show = try q.choice("show", default: "overlay", among: ["overlay", "heatmap"])
        let postSoftmax = try q.bool("post_softmax", default: false)
        let top = try q.int("top", default: 5, in: 1...1000)
        let percentile = try q.optionalInt("percentile", in: 1...100)
        let layer: LayerSummary
        if let name = q.string("layer") {
            layer = try session.spatialLayer(named: name)
        } else {
            guard let l = defaultCAMLayer(of: session.keras) else {
                throw APIError(.unprocessableContent, "not_spatial", "the model has no spatial convolutional layer for a heatmap")
            }
            layer = l
        }
        let classIndex = try q.string("class").map { text in
            if let k = try? self.session.resolveClass(text) { return k }
            return try self.session.resolveClass(text.replacingOccurrences(of: "+", with: " "))
        }
        let image = try await UploadedImage.read(request, maxBytes: settings.maxBodyBytes)
        let canonical = "method=\(method.rawValue)&class=\(classIndex.map(String.init) ?? "top")&layer=\(layer.name)&alpha=\(alpha)"
            + "&colormap=\(colormap.rawValue)&format=\(format)&show=\(show)&post_softmax=\(postSoftmax)&top=\(top)&percentile=\(percentile ?? 0)"
        let etag = strongETag(service.key("heatmap", canonical, image: image))
        if matches(request, etag) { throw preconditionFailed(etag) }
        let session = self.session
        let maxPixels = settings.maxImagePixels
        let result = try await service.executor.run(.interactive) { () -> HeatmapOutcome in
            let photo = try decodeImage(image, options: DecodeOptions(maxPixels: maxPixels, layout: .rgb))
            let input = try session.imagePipeline().prepare(photo).input
            let scoreNode = session.scoreNode(postSoftmax: postSoftmax)
            let request = CAMRequest(layerNode: layer.nodeId, scoreNode: scoreNode, classIndex: classIndex)
            let cam = try session.network.classActivationMap(input, request, method: method)
            let map = cam.map
            // The CAM's forward pass already gave every score: rank those instead of a second pass.
            let predictions = map.scores.count == session.classCount
                ? session.rank(scoreNode == session.network.outputNode ? map.scores : softmax(map.scores), top: top)
                : try session.predict(input, top: top)
            var png: Data?
            if format == "png" {
                let p = percentile.map(Float.init) ?? (cam.resolution == .input ? 99 : nil)
                let picture = show == "overlay"
                    ? try camOverlay(map, on: photo, alpha: alpha, colormap: colormap, displayPercentile: p)
                    : try camHeatmapImage(map, width: photo.width, height: photo.height, colormap: colormap, displayPercentile: p)
                png = try encodePNG(picture, fast: true)
            }
            return HeatmapOutcome(map: map, layer: cam.resolution == .layer ? layer.name : "input", predictions: predictions, png: png)
        }
        let map = result.map
        let label = session.label(of: map.classIndex)
        let probability = result.predictions.first { $0.classIndex == map.classIndex }?.score
        if let png = result.png {
            var headers: HTTPFields = [
                .init("X-Class")!: String(map.classIndex),
                .init("X-Score")!: String(map.score),
                .init("X-Score-Kind")!: postSoftmax ? "probability" : (session.keras.logitsNode != nil ? "logit" : "output"),
                .init("X-Layer")!: result.layer,
                .init("X-Method")!: method.rawValue,
            ]
            if let label { headers[.init("X-Label")!] = headerSafe(label) }
            if let probability { headers[.init("X-Probability")!] = String(probability) }
            return pngResponse(png, etag: etag, extra: headers)
        }
        return try json(HeatmapBody(class: map.classIndex, label: label, score: map.score, probability: probability,
                                    layer: result.layer, method: method.rawValue, height: map.height, width: map.width,
                                    heatmap: map.heatmap, top: result.predictions), etag: etag)
    }

    struct HeatmapOutcome: Sendable {
        var map: ClassActivationMap
        var layer: String
        var predictions: [Prediction]
        var png: Data?
    }

    struct HeatmapBody: Encodable {
        var `class`: Int
        var label: String?
        var score: Float
        var probability: Float?
        var layer: String
        var method: String
        var height: Int
        var width: Int
        /// Row-major, normalised to [0, 1], at the layer's own resolution (before upsampling).
        var heatmap: [Float]
        var top: [Prediction]
    }

    func activations(_ request: Request) async throws -> Response {
        let q = Query(request)
        let layer: LayerSummary
        if let name = q.string("layer") {
            layer = try session.spatialLayer(named: name)
        } else {
            guard let first = session.keras.layers.first(where: { $0.isSpatial && $0.nodeId > 0 }) else {
                throw APIError(.unprocessableContent, "not_spatial", "the model has no layer with a spatial feature map")
            }
            layer = first
        }
        let channels = layer.outputShape.last ?? 0
        let cols = try q.int("cols", default: 16, in: 1...256)
        let colormap: Colormap = try q.choice("colormap", default: .viridis)
        let format = try q.choice("format", default: "png", among: ["png", "json"])
        let channel = try q.optionalInt("channel", in: Int.min...Int.max)
        if let channel, !(0..<channels).contains(channel) {
            throw APIError(.notFound, "out_of_range", "channel \(channel) out of range: '\(layer.name)' has \(channels) channels (0...\(channels - 1))")
        }
        let image = try await UploadedImage.read(request, maxBytes: settings.maxBodyBytes)
        let canonical = "layer=\(layer.name)&cols=\(cols)&colormap=\(colormap.rawValue)&format=\(format)&channel=\(channel ?? -1)"
        let etag = strongETag(service.key("activations", canonical, image: image))
        if matches(request, etag) { throw preconditionFailed(etag) }
        let session = self.session
        let maxPixels = settings.maxImagePixels
        let outcome = try await service.executor.run(.interactive) { () -> (png: Data?, stats: [ChannelStatistics]?, shape: [Int]) in
            let input = try session.imagePipeline().prepare(image, maxPixels: maxPixels).input
            // Stop right after the layer: nothing above it is computed.
            guard let activation = try session.network.forward(input, stopAfter: layer.nodeId)[layer.nodeId], activation.rank == 4 else {
                throw VisualizationError.notSpatial(layer: layer.name, shape: layer.outputShape)
            }
            let one = activation.sample(0)
            let shape = Array(activation.shape.dropFirst())
            if format == "json" { return (nil, try channelStatistics(one), shape) }
            let picture = try channel.map { try activationChannel(one, channel: $0, colormap: colormap) }
                ?? activationGrid(one, cols: cols, colormap: colormap)
            return (try encodePNG(picture, fast: true), nil, shape)
        }
        if let png = outcome.png {
            return pngResponse(png, etag: etag, extra: [.init("X-Layer")!: layer.name, .init("X-Shape")!: outcome.shape.map(String.init).joined(separator: "x")])
        }
        return try json(ActivationsBody(layer: layer.name, shape: outcome.shape, channels: outcome.stats ?? []), etag: etag)
    }

    struct ActivationsBody: Encodable {
        var layer: String
        var shape: [Int]
        var channels: [ChannelStatistics]
    }

    // MARK: - Filters and jobs

    func filterSpec(_ q: Query, layer: String, first: Int, count: Int, cols: Int) throws -> FilterSpec {
        let method: FilterMethod = try q.choice("method", default: .book)
        let steps = try q.int("steps", default: method.defaultSteps, in: 1...settings.filterMaxSteps)
        let step = try q.float("step", default: 1, in: 0.001...1000)
        let size = try q.int("size", default: settings.filterSize, in: FilterSpec.sizeRange)
        let seed = try q.int("seed", default: 0, in: 0...Int(UInt32.max))
        let objective: FilterObjective = try q.choice("objective", default: .channel)
        return FilterSpec(layer: layer, first: first, count: count, method: method, objective: objective, steps: steps,
                          stepSize: step, size: size, seed: UInt64(seed), start: nil, cols: cols)
    }

    func filter(_ request: Request, layer: String, index: String) async throws -> Response {
        guard let i = Int(index) else {
            throw APIError.badRequest("filter index '\(index)' is not an integer")
        }
        let spec = try filterSpec(Query(request), layer: layer, first: i, count: 1, cols: 1)
        return try await filterResponse(request, spec: spec, priority: .job)
    }

    func filterGrid(_ request: Request, layer: String) async throws -> Response {
        let q = Query(request)
        let channels = try session.layer(named: layer).outputShape.last ?? 0
        let first = try q.int("first", default: 0, in: 0...max(0, channels - 1))
        let count = try q.int("count", default: min(64, max(1, channels - first)), in: 1...settings.filterMaxCount)
        let cols = try q.int("cols", default: 8, in: 1...64)
        let spec = try filterSpec(q, layer: layer, first: first, count: count, cols: cols)
        return try await filterResponse(request, spec: spec, priority: .bulk)
    }

    /// A cached picture at once; otherwise the job (new or joined), waited for up to
    /// `wait` seconds: the picture if it finished, else 202 with the job's Location.
    func filterResponse(_ request: Request, spec: FilterSpec, priority: ComputePriority) async throws -> Response {
        let wait = try Query(request).double("wait", default: settings.jobWaitSeconds, in: 0...300)
        let submitted = try service.submitFilters(spec, priority: priority)
        let etag = strongETag(submitted.key)
        guard let job = submitted.job else {
            if matches(request, etag) { return notModified(etag) }
            guard let png = service.cache.get(submitted.key) else { throw APIError(.internalServerError, "cache_error", "a cached result vanished") }
            service.metrics.recordCache(hit: true)
            return pngResponse(png, etag: etag, extra: [.init("X-Cache")!: "hit"])
        }
        service.metrics.recordCache(hit: false)
        let status = await service.jobs.wait(job.id, seconds: wait) ?? job
        switch status.state {
        case .done:
            guard let png = service.cache.get(submitted.key) else { throw APIError(.internalServerError, "cache_error", "the finished result is missing") }
            return pngResponse(png, etag: etag, extra: [.init("X-Cache")!: "miss", .init("X-Job")!: status.id])
        case .failed:
            if status.timedOut { throw APIError(.gatewayTimeout, "job_timeout", status.error ?? "the job timed out") }
            throw APIError(.internalServerError, "job_failed", status.error ?? "the job failed")
        case .cancelled:
            throw APIError(.serviceUnavailable, "job_cancelled", "\(status.error ?? "cancelled"); ask again to start a new job",
                           headers: [.retryAfter: "1"])
        case .queued, .running:
            var response = try json(status, status: .accepted)
            response.headers[.location] = "/jobs/\(status.id)"
            response.headers[.retryAfter] = "2"
            return response
        }
    }

    func job(_ id: String) throws -> Response {
        guard let status = service.jobs.status(id) else { throw unknownJob(id) }
        return try json(status)
    }

    func cancelJob(_ id: String) throws -> Response {
        guard let status = service.jobs.cancel(id) else { throw unknownJob(id) }
        return try json(status)
    }

    /// Server-Sent Events: `progress` while the job runs, then one `done`, `failed` or
    /// `cancelled` event, then the stream ends.
    func jobEvents(_ id: String) throws -> Response {
        guard let updates = service.jobs.updates(id) else { throw unknownJob(id) }
        let encoder = JSONEncoder.api
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                for await status in updates {
                    let event = status.state.isFinished ? status.state.rawValue : "progress"
                    let data = String(decoding: try encoder.encode(status), as: UTF8.self)
                    try await writer.write(ByteBuffer(string: "event: \(event)\ndata: \(data)\n\n"))
                }
                try await writer.finish(nil)
            })
    }

    func unknownJob(_ id: String) -> APIError {
        APIError(.notFound, "unknown_job", "no job '\(id)' (finished jobs are kept for the last \(settings.keptFinishedJobs))")
    }

    // MARK: - Response helpers

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, etag: String? = nil, cacheable: Bool = false) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let etag { headers[.eTag] = etag }
        headers[.cacheControl] = cacheable || etag != nil ? "no-cache" : "no-store"
        let data = try JSONEncoder.api.encode(value)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data + [0x0A])))
    }

    func pngResponse(_ png: Data, etag: String, extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "image/png"
        headers[.eTag] = etag
        // Revalidate every time: the same URL gives another picture if the server's model changes.
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: png)))
    }

    func strongETag(_ key: String) -> String { "\"\(key.prefix(40))\"" }

    /// RFC 9110 §13.1.2: If-None-Match lists the entity tags the client has (or `*`).
    func matches(_ request: Request, _ etag: String) -> Bool {
        request.headers[values: .ifNoneMatch].contains { header in
            header.split(separator: ",").contains { tag in
                let t = tag.trimmingCharacters(in: .whitespaces)
                return t == "*" || t == etag || t == "W/" + etag
            }
        }
    }

    func notModified(_ etag: String) -> Response {
        Response(status: .notModified, headers: [.eTag: etag, .cacheControl: "no-cache"])
    }

    /// For POST, a matching If-None-Match is answered 412 (RFC 9110 §13.1.2; 304 is for GET).
    func preconditionFailed(_ etag: String) -> APIError {
        APIError(.preconditionFailed, "not_modified",
                 "the result for this image and these parameters has ETag \(etag), which If-None-Match already lists",
                 headers: [.eTag: etag])
    }

    /// HTTP header values are ASCII: other characters become '?'.
    func headerSafe(_ s: String) -> String {
        String(s.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? Character($0) : "?" })
    }
}
