import Engine
import Foundation
import Imaging
import KerasFormat
import Logging
import Synchronization
import Visualization

/// Everything a running server shares: the model (loaded once), the compute threads,
/// the job queue, the result cache and the metrics. Routes only translate HTTP to calls here.
public final class ConvLensService: Sendable {
    public let settings: ServerSettings
    public let session: ModelSession
    /// What draws every picture the routes answer and the jobs run: `session`, unless a
    /// test gives a stand-in.
    public let renderer: any Renderer
    /// SHA-256 of the model file (and its profile): part of every content address.
    public let modelDigest: String
    public let executor: ComputeExecutor
    /// Where filter jobs run: this process's queue, or the cluster's table (`jobs.backend`).
    public let jobs: any JobBackend
    /// Finished results: `cache` alone, or `cache` in front of PostgreSQL.
    public let results: any ResultStore
    /// This process's memory (and disk) cache of finished results.
    public let cache: ResultCache
    /// This process's part in a PostgreSQL cluster (`jobs.backend: postgres`).
    let cluster: Cluster?
    public let metrics: ServerMetrics
    /// The dataset examples index of `gallery.dataset_dir`.
    let datasetIndex: DatasetIndexStore
    let ready = Atomic<Bool>(true)
    private let drainTask = Mutex<Task<Void, Never>?>(nil)

    /// Loads the model and sets up the queue and cache. Throws `ServerStartupError`
    /// with a message naming the file for a missing or unreadable model.
    public convenience init(settings: ServerSettings, executable: URL, logger: Logger = Logger(label: "convlens")) throws {
        try settings.validate()
        let profile: ModelProfile
        if settings.modelPath.isEmpty {
            guard let url = ModelProfile.bundledDefault(executable: executable) else {
                throw ServerStartupError(
                    "no model.path configured and the bundled model (models/efficientnet_lite0.json) was not found; run from the ConvLens checkout, or set --model / CONVLENS_MODEL_PATH"
                )
            }
            profile = try Self.profile(at: url)
        } else {
            profile = try Self.profile(at: URL(fileURLWithPath: settings.modelPath))
        }
        guard FileManager.default.fileExists(atPath: profile.modelURL.path) else {
            throw ServerStartupError("model file not found: \(profile.modelURL.path)")
        }
        let session: ModelSession
        do {
            session = try ModelSession(profile: profile)
        } catch {
            throw ServerStartupError("cannot load the model \(profile.modelURL.path): \(error)")
        }
        try self.init(settings: settings, session: session, modelDigest: try session.modelDigest(), logger: logger)
    }

    /// A service around a model already loaded (tests share one load between servers);
    /// `renderer` draws the pictures (nil: the model itself).
    public init(
        settings: ServerSettings, session: ModelSession, modelDigest: String, renderer: (any Renderer)? = nil,
        logger: Logger = Logger(label: "convlens")
    ) throws {
        try settings.validate()
        do {
            _ = try session.imagePipeline()
        } catch {
            throw ServerStartupError("the model \(session.profile.modelURL.path) does not take images: \(error)")
        }
        self.session = session
        let renderer = renderer ?? session
        self.renderer = renderer
        self.modelDigest = modelDigest
        self.settings = settings
        metrics = ServerMetrics()
        datasetIndex = DatasetIndexStore(settings: settings, logger: logger)
        executor = ComputeExecutor(
            threads: settings.computeThreads, ompThreads: settings.ompThreads,
            maxPending: settings.maxPendingComputations, maxPendingCostPerClient: settings.maxPendingCostPerClient,
            jobShare: settings.jobShare, quantumSeconds: settings.quantumMilliseconds / 1000,
            events: { [metrics] in metrics.recordCompute($0) })
        cache = ResultCache(
            capacityBytes: settings.memoryCacheBytes,
            directory: settings.cacheDir.isEmpty
                ? nil
                : URL(fileURLWithPath: settings.cacheDir).appendingPathComponent(String(modelDigest.prefix(16))),
            diskCapacityBytes: settings.diskCacheBytes)
        if let problem = cache.startupDiskProblem {
            logger.warning(
                "cannot use the cache directory \(settings.cacheDir) (cache.dir): \(problem); results are kept in memory only until it can be written"
            )
        }
        switch settings.jobBackend {
        case .postgres:
            let cluster = try Cluster(
                settings: settings, renderer: renderer, modelDigest: modelDigest, kinds: .standard, executor: executor,
                cache: cache, metrics: metrics, logger: logger)
            self.cluster = cluster
            jobs = cluster.jobs
            results = cluster.results
            cluster.start()
        case .memory, .invalid:
            cluster = nil
            jobs = LocalJobs(
                queue: JobQueue(
                    executor: executor, cache: cache, metrics: metrics, workers: settings.jobWorkers,
                    maxQueued: settings.maxQueuedJobs, timeoutSeconds: settings.jobTimeoutSeconds,
                    finishedBytes: settings.finishedJobBytes, logger: logger),
                renderer: renderer, limits: settings.limits)
            results = cache
        }
    }

    /// Whether this replica should get traffic: not draining, and (cluster) PostgreSQL reachable.
    /// nil when ready, else why not.
    public var unreadiness: String? {
        if !ready.load(ordering: .relaxed) { return "the server is shutting down" }
        if let cluster, !cluster.isReachable { return "the job store (PostgreSQL \(cluster.database)) is unreachable" }
        return nil
    }

    private static func profile(at url: URL) throws -> ModelProfile {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ServerStartupError("model file not found: \(url.path)")
        }
        do {
            return try ModelProfile.resolve(url)
        } catch {
            throw ServerStartupError("cannot read the model profile \(url.path): \(error)")
        }
    }

    /// Starts shutting down (once): readiness off, no new jobs, queued jobs cancelled,
    /// running jobs given the grace period and then cancelled, compute threads stopped.
    public func beginDrain() {
        drainTask.withLock { task in
            guard task == nil else { return }
            ready.store(false, ordering: .relaxed)
            let (jobs, cluster, executor, grace) = (self.jobs, self.cluster, self.executor, settings.shutdownGraceSeconds)
            // New computations are refused at once; the admitted interactive ones get the
            // grace period, then stop at their next boundary, so the HTTP server's wait for
            // requests in flight ends with it whatever the load. The cluster's worker stops
            // claiming first: a job claimed now could not compute.
            cluster?.stopClaiming()
            executor.shutdown()
            Task {
                try? await Task.sleep(for: .milliseconds(Int64(grace * 1000)))
                executor.cancelInteractive("the server is shutting down (jobs.shutdown_grace_seconds passed)")
            }
            task = Task {
                await jobs.shutdown(deadline: grace)
                await cluster?.shutdown(grace: grace)
            }
        }
    }

    /// Whether the shutdown has begun.
    public var isShuttingDown: Bool { drainTask.withLock { $0 != nil } }

    /// Hands the cluster jobs this process runs back to the queue at once (a second signal).
    func releaseClusterJobs() async {
        await cluster?.shutdown(grace: 0)
    }

    /// Shuts down (starting the drain if nothing has) and waits until it is done.
    public func drain() async {
        beginDrain()
        await drainTask.withLock { $0 }?.value
    }

    /// What one request may cost: the image and overlay pixel limits of the settings.
    public var limits: RenderLimits { settings.limits }

    /// The content address of a canonical request's result for this model (and image).
    public func address(of request: some RenderRequest, image: String? = nil) -> ContentAddress {
        request.contentAddress(model: modelDigest, image: image)
    }

    /// Columns of the gallery's filter grids.
    public static let galleryColumns = 8

    /// The gallery's grid of one layer (a convolution's activated output): the first
    /// `gallery.count` filters, `method=auto` (the grid route's default, so pre-rendered
    /// grids are the ones the gallery asks for), at the default size (`canonical(_:)`).
    public func galleryRequest(for layer: LayerSummary) -> FilterRequest {
        var request = FilterRequest(layer: layer.path, count: min(settings.galleryCount, layer.outputShape.last ?? 0))
        request.method = .auto
        request.cols = Self.galleryColumns
        return request
    }

    /// The canonical form of a filter request for this server: without a size, the
    /// configured `filters.size` for a model that takes any size, the model's own otherwise.
    public func canonical(_ request: FilterRequest) throws -> FilterRequest {
        var r = try request.canonical(for: session, anySizeDefault: settings.filterSize)
        r.numerics = settings.filterNumerics == .fast ? .fast : nil
        return r
    }

    /// Submits a filter request as a job (or joins the identical one), unless its result
    /// is stored. Checks the request and the server's limits (its memory estimate among
    /// them) before queueing anything.
    func submit(_ request: FilterRequest, priority: ComputePriority) async throws -> (
        address: ContentAddress, request: FilterRequest, job: JobStatus?
    ) {
        try request.check(maxSteps: settings.filterMaxSteps, maxCount: settings.filterMaxCount)
        let r = try canonical(request)
        try session.checkCost(r, limits: limits)
        let address = address(of: r)
        if try await results.hasResult(for: address.hex) { return (address, r, nil) }
        return (address, r, try await jobs.submit(r, address: address, priority: priority))
    }

    /// Queues every convolution layer's filter grid at bulk priority (skipping cached ones).
    /// Returns how many were queued; stops quietly when the queue is full.
    @discardableResult
    public func prerenderGallery(logger: Logger) async -> Int {
        var queued = 0
        for (_, layer) in session.galleryLayers {
            do {
                if try await submit(galleryRequest(for: layer), priority: .bulk).job != nil { queued += 1 }
            } catch {
                logger.warning("gallery pre-rendering stopped at \(layer.name): \(error)")
                break
            }
        }
        return queued
    }
}

extension ServerSettings {
    /// What one request may cost: the image and overlay pixel limits, the passes of a heatmap
    /// and of a comparison, the memory of one request.
    var limits: RenderLimits {
        RenderLimits(
            maxImagePixels: maxImagePixels, maxOverlayPixels: maxOverlayPixels, maxHeatmapPasses: maxHeatmapPasses,
            maxComparePasses: maxComparePasses, maxRequestBytes: requestByteLimit, maxDocumentBytes: resultByteLimit)
    }
}

extension ConvLensService {
    /// Renders the gallery's filter grid of one layer (a convolution's activated output)
    /// now, on the calling thread, and stores it in the cache (what `convlens gallery` does).
    public func renderGalleryGrid(_ layer: LayerSummary, progress: (FilterProgress) -> Bool = { _ in true }) throws -> (
        png: Data, cached: Bool
    ) {
        let r = try canonical(galleryRequest(for: layer))
        let key = address(of: r).hex
        if let png = cache.get(key) { return (png, true) }
        let png = try session.render(r, progress: progress).body
        cache.put(key, png)
        return (png, false)
    }
}
