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
    let connections: Connections

    var settings: ServerSettings { service.settings }
    var session: ModelSession { service.session }

    /// A route as registered (path in the router's `:name` syntax).
    struct Endpoint: Sendable, Hashable {
        var method: String
        var path: String
    }

    /// Registers every route; returns them, so a test can check each is documented.
    @discardableResult
    func register(on router: Router<ServiceRequestContext>) -> [Endpoint] {
        var endpoints: [Endpoint] = []
        func add(
            _ method: HTTPRequest.Method, _ path: String,
            _ handler: @escaping @Sendable (Request, ServiceRequestContext) async throws -> Response
        ) {
            router.on(RouterPath(path), method: method, use: handler)
            endpoints.append(Endpoint(method: method.rawValue, path: path))
        }
        add(.get, "/healthz") { _, _ in try json(["status": "ok"]) }
        add(.get, "/readyz") { _, _ in try await readiness() }
        add(.get, "/metrics") { _, _ in await metrics() }
        add(.get, "/api/model") { _, _ in try model() }
        add(.post, "/api/predict") { request, context in try await predict(request, context) }
        add(.post, "/heatmap") { request, context in try await heatmap(request, context) }
        add(.post, "/heatmap/compare") { request, context in try await compare(request, context) }
        add(.get, "/heatmap/compare/:address") { request, context in
            try await comparison(request, address: context.parameters.get("address")!)
        }
        add(.post, "/activations") { request, context in try await activations(request, context) }
        // A nested layer's path (`vgg16/block5_conv3`) travels as one segment, its "/" as %2F.
        @Sendable func layerParameter(_ context: some RequestContext) -> String {
            let raw = context.parameters.get("layer")!
            return raw.removingPercentEncoding ?? raw
        }
        add(.get, "/filters/:layer/:index") { request, context in
            try await filter(request, layer: layerParameter(context), index: context.parameters.get("index")!)
        }
        add(.get, "/filters/:layer/:index/examples") { request, context in
            try await examples(request, layer: layerParameter(context), index: context.parameters.get("index")!)
        }
        add(.get, "/filters/:layer") { request, context in
            try await filterGrid(request, layer: layerParameter(context))
        }
        add(.get, "/jobs/:id") { _, context in try await job(context.parameters.get("id")!) }
        add(.delete, "/jobs/:id") { _, context in try await cancelJob(context.parameters.get("id")!) }
        add(.get, "/jobs/:id/events") { _, context in try await jobEvents(context.parameters.get("id")!) }
        // Read once: the document ships with the gallery and does not change while serving.
        let openAPI = try? Data(contentsOf: URL(fileURLWithPath: settings.publicDir).appendingPathComponent("openapi.yaml"))
        add(.get, "/openapi.yaml") { _, _ in
            guard let openAPI else { throw APIError.notFound("openapi.yaml is not in \(settings.publicDir) (server.public_dir)") }
            return Response(
                status: .ok, headers: [.contentType: "application/yaml; charset=utf-8", .cacheControl: "no-cache"],
                body: .init(byteBuffer: ByteBuffer(bytes: openAPI)))
        }
        return endpoints
    }

    // MARK: - Health and metrics

    func readiness() async throws -> Response {
        if let reason = service.unreadiness { throw APIError(.serviceUnavailable, "not_ready", reason) }
        let (waiting, running) = service.executor.load
        let counts = try await service.jobs.counts()
        return try json(
            ReadyBody(
                status: "ready", model: session.profile.name, pending_computations: waiting,
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

    func metrics() async -> Response {
        service.metrics.pendingComputations.set(to: Double(service.executor.load.waiting))
        service.metrics.recordDisk(service.cache.stats)
        if let counts = try? await service.jobs.counts() {
            service.metrics.queueDepth.set(to: Double(counts.queued))
            service.metrics.runningJobs.set(to: Double(counts.running))
            service.metrics.recordQueue(counts)
        }
        let text = service.metrics.registry.emitToBuffer()
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: text)))
    }

    // MARK: - Model

    func model() throws -> Response {
        let keras = session.keras
        let pipeline = try session.imagePipeline()
        let defaultLayer = session.defaultCAMLayer?.name
        let activated = Dictionary(session.galleryLayers.map { ($0.convolution.name, $0.target.name) }, uniquingKeysWith: { a, _ in a })
        let layers = keras.layers.map { l in
            ModelBody.Layer(
                name: l.name, path: l.path, depth: l.depth, class_name: l.className, output_shape: l.outputShape,
                parameters: l.parameterCount, nested_model: KerasModel.isModelClass(l.className),
                spatial: l.isSpatial, convolution: activated[l.name] != nil,
                filters: l.isSpatial && l.nodeId > 0 ? l.outputShape.last : nil,
                activated_output: activated[l.name])
        }
        let body = ModelBody(
            name: session.profile.name, keras_name: keras.name, format: keras.format.rawValue, keras_version: keras.kerasVersion,
            sha256: service.modelDigest,
            input: .init(
                height: pipeline.height, width: pipeline.width, channels: session.network.inputShape[2],
                resize: session.profile.resize ?? "pil_bilinear",
                preprocessing: "\(pipeline.preprocessing)", preprocessing_source: pipeline.preprocessingSource),
            classes: session.classCount, labels: session.labels != nil, default_heatmap_layer: defaultLayer,
            cam_methods: CAMMethod.allCases.map(\.rawValue), colormaps: Colormap.allCases.map(\.rawValue),
            cam_method_info: CAMMethod.allCases.map { m in
                .init(
                    name: m.rawValue, uses_layer: m.weightsALayer,
                    passes: m.passes(layerChannels: session.defaultCAMLayer?.outputShape.last ?? 0))
            },
            filter_defaults: .init(
                method: FilterMethod.auto.rawValue, steps_book: FilterMethod.book.defaultSteps,
                steps_lucid: FilterMethod.lucid.defaultSteps,
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

    func predict(_ request: Request, _ context: ServiceRequestContext) async throws -> Response {
        try await renderUpload(request, context, Query(request).predictRequest())
    }

    func heatmap(_ request: Request, _ context: ServiceRequestContext) async throws -> Response {
        try await renderUpload(request, context, Query(request).heatmapRequest())
    }

    func activations(_ request: Request, _ context: ServiceRequestContext) async throws -> Response {
        try await renderUpload(request, context, Query(request).activationsRequest())
    }

    /// Who a computation for this request is for: its client (fair shares and the
    /// per-client limit count by it), its cost in model passes, and whether the client
    /// is still connected (it stops at its next boundary once not).
    func origin(_ request: Request, _ context: ServiceRequestContext, passes: Int = 1) -> ComputeOrigin {
        let connection = connections.connection(of: context.channel)
        return ComputeOrigin(client: connections.client(of: request, channel: context.channel), cost: passes) {
            connection?.hungUp ?? false
        }
    }

    /// A request on an uploaded image: made canonical (once) and its cost checked before
    /// the body is read, then hashed and rendered on the compute threads. The result's
    /// content address (model, canonical request, image) is its ETag; a matching
    /// If-None-Match is answered 412 before rendering.
    func renderUpload(_ request: Request, _ context: ServiceRequestContext, _ typed: some RenderRequest) async throws -> Response {
        let (service, renderer, limits) = (self.service, service.renderer, service.limits)
        let canonical = try typed.canonical(for: session)
        try canonical.checkCost(on: session, limits: limits)
        let origin = origin(request, context, passes: try canonical.passes(on: session))
        let image = try await UploadedImage.read(request, maxBytes: settings.maxBodyBytes)
        let known = entityTags(request)
        let (address, rendered) = try await service.executor.run(.interactive, origin: origin) { () -> (ContentAddress, Rendered) in
            let address = service.address(of: canonical, image: SHA256Digest.hex([image]))
            if known.matches(address.etag) { throw Self.preconditionFailed(address.etag) }
            return (address, try renderer.render(canonical: canonical, input: .image(image), limits: limits) { _ in true })
        }
        return respond(rendered.body, format: rendered.format, etag: address.etag, facts: rendered.facts)
    }

    // MARK: - Comparing methods

    /// A comparison of methods on an uploaded image, as a job: 202 with the job (its
    /// `result` is where the document will be), or 200 with the document when it is stored.
    /// The request and its cost are checked, and the image decoded once, before anything is
    /// queued, so bad input is the caller's 400/404/413/415/422 and never a failed job.
    func compare(_ request: Request, _ context: ServiceRequestContext) async throws -> Response {
        let canonical = try Query(request).compareRequest().canonical(for: session)
        let (service, session, limits) = (self.service, self.session, service.limits)
        try canonical.checkCost(on: session, limits: limits)
        let image = try await UploadedImage.read(request, maxBytes: settings.maxBodyBytes)
        let address = try await service.executor.run(.interactive, origin: origin(request, context)) { () -> ContentAddress in
            _ = try session.prepare(.image(image), limits: limits)
            return service.address(of: canonical, image: SHA256Digest.hex([image]))
        }
        if let body = try await service.results.result(for: address.hex) {
            service.metrics.recordCache(hit: true)
            var response = respond(body, format: .json, etag: address.etag, facts: [Fact("Cache", "hit")])
            response.headers[.contentLocation] = CompareRequest.resultPath(address)
            return response
        }
        service.metrics.recordCache(hit: false)
        let status = try await service.jobs.submit(canonical, input: .image(image), address: address, priority: .job)
        var response = try json(status, status: .accepted)
        response.headers[.location] = "/jobs/\(status.id)"
        response.headers[.retryAfter] = "2"
        return response
    }

    /// A finished comparison by its content address (the job's `result`).
    func comparison(_ request: Request, address hex: String) async throws -> Response {
        guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw RequestError.badParameter(
                name: "address", value: String(hex.prefix(80)), allowed: "give the 64 lower-case hex digits of a job's result")
        }
        let address = ContentAddress(hex: hex)
        if entityTags(request).matches(address.etag) { return notModified(address.etag) }
        guard let body = try await service.results.result(for: hex) else {
            throw APIError(
                .notFound, "unknown_result",
                "no comparison \(hex) is stored: it is not finished, failed, or was evicted; POST /heatmap/compare again")
        }
        return respond(body, format: .json, etag: address.etag, facts: [])
    }

    // MARK: - Filters and jobs

    func filter(_ request: Request, layer: String, index: String) async throws -> Response {
        guard let i = Int(index) else {
            throw RequestError.badParameter(name: "index", value: index, allowed: "it is not an integer; give a filter index from 0")
        }
        let typed = try Query(request).filterRequest(layer: layer, index: i)
        return try await filterResponse(request, typed, priority: .job)
    }

    func filterGrid(_ request: Request, layer: String) async throws -> Response {
        let typed = try Query(request).filterRequest(layer: layer, index: nil)
        return try await filterResponse(request, typed, priority: .bulk)
    }

    /// A cached picture at once; otherwise the job (new or joined), waited for up to
    /// `wait` seconds: the picture if it finished, else 202 with the job's Location.
    func filterResponse(_ request: Request, _ typed: FilterRequest, priority: ComputePriority) async throws -> Response {
        let wait = try Query(request).double("wait", default: settings.jobWaitSeconds, in: 0...300)
        let submitted = try await service.submit(typed, priority: priority)
        let (key, etag, format) = (submitted.address.hex, submitted.address.etag, typed.format)
        // The method drawn (what method=auto resolved to), whether the picture is new or cached.
        let method = Fact("Method", submitted.request.method.rawValue)
        guard let job = submitted.job else {
            if entityTags(request).matches(etag) { return notModified(etag) }
            guard let body = try await service.results.result(for: key) else {
                throw VisualizationError.invalid("a cached result vanished")
            }
            service.metrics.recordCache(hit: true)
            return respond(body, format: format, etag: etag, facts: [method, Fact("Cache", "hit")])
        }
        service.metrics.recordCache(hit: false)
        let status = try await service.jobs.wait(job.id, seconds: wait) ?? job
        guard status.state == .done else { return try unfinished(status) }
        guard let body = try await service.results.result(for: key) else {
            throw VisualizationError.invalid("the finished result is missing")
        }
        return respond(body, format: format, etag: etag, facts: [method, Fact("Cache", "miss"), Fact("Job", status.id)])
    }

    /// A job that has not finished well: its failure as an error, or 202 with its Location.
    func unfinished(_ status: JobStatus) throws -> Response {
        switch status.state {
        case .done:
            throw VisualizationError.invalid("a finished job was taken for an unfinished one")
        case .failed:
            if status.timedOut { throw APIError(.gatewayTimeout, "job_timeout", status.error ?? "the job timed out") }
            throw APIError(.internalServerError, "job_failed", status.error ?? "the job failed")
        case .cancelled:
            throw APIError(
                .serviceUnavailable, "job_cancelled", "\(status.error ?? "cancelled"); ask again to start a new job",
                headers: [.retryAfter: "1"])
        case .queued, .running:
            var response = try json(status, status: .accepted)
            response.headers[.location] = "/jobs/\(status.id)"
            response.headers[.retryAfter] = "2"
            return response
        }
    }

    func job(_ id: String) async throws -> Response {
        guard let status = try await service.jobs.status(id) else { throw unknownJob(id) }
        return try json(status)
    }

    func cancelJob(_ id: String) async throws -> Response {
        guard let status = try await service.jobs.cancel(id) else { throw unknownJob(id) }
        return try json(status)
    }

    /// Server-Sent Events: `progress` while the job runs, then one `done`, `failed` or
    /// `cancelled` event, then the stream ends.
    func jobEvents(_ id: String) async throws -> Response {
        guard let updates = try await service.jobs.updates(id) else { throw unknownJob(id) }
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
        APIError(
            .notFound, "unknown_job",
            "no job '\(id)' (finished jobs are kept while their statuses fit in jobs.finished_bytes, done ones longest)")
    }

    // MARK: - Response helpers

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, etag: String? = nil, cacheable: Bool = false) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let etag { headers[.eTag] = etag }
        headers[.cacheControl] = cacheable || etag != nil ? "no-cache" : "no-store"
        let data = try JSONEncoder.api.encode(value)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data + [0x0A])))
    }

    /// A rendered result: its bytes, its content type, its ETag, and each fact as an `X-` header.
    func respond(_ body: Data, format: OutputFormat, etag: String, facts: [Fact]) -> Response {
        var headers: HTTPFields = [:]
        for fact in facts {
            if let name = HTTPField.Name("X-" + fact.name) { headers[name] = headerSafe(fact.value) }
        }
        headers[.contentType] = format.contentType
        headers[.eTag] = etag
        // Revalidate every time: the same URL gives another picture if the server's model changes.
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The entity tags of a request's If-None-Match (RFC 9110 §13.1.2), read once.
    func entityTags(_ request: Request) -> EntityTags {
        EntityTags(header: request.headers[values: .ifNoneMatch])
    }

    struct EntityTags: Sendable {
        var tags: [String]

        init(header values: [String]) {
            tags = values.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        }

        func matches(_ etag: String) -> Bool { tags.contains { $0 == "*" || $0 == etag || $0 == "W/" + etag } }
    }

    func notModified(_ etag: String) -> Response {
        Response(status: .notModified, headers: [.eTag: etag, .cacheControl: "no-cache"])
    }

    /// For POST, a matching If-None-Match is answered 412 (RFC 9110 §13.1.2; 304 is for GET).
    static func preconditionFailed(_ etag: String) -> APIError {
        APIError(
            .preconditionFailed, "not_modified",
            "the result for this image and these parameters has ETag \(etag), which If-None-Match already lists",
            headers: [.eTag: etag])
    }

    /// HTTP header values are ASCII: other characters become '?'.
    func headerSafe(_ s: String) -> String {
        String(s.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? Character($0) : "?" })
    }
}
