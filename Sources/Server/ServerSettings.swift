import Configuration
import Engine
import Foundation
import Visualization

/// Every setting of `convlens serve`, with its default. `config/convlens.yaml`
/// documents each key; a key `a.b_c` is overridden by the environment variable
/// `CONVLENS_A_B_C` and (for the common ones) by a command-line flag.
public struct ServerSettings: Sendable {
    // server
    public var host = "127.0.0.1"
    public var port = 8080
    /// Directory of the static gallery served at `/`.
    public var publicDir = "public"
    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes = 20 << 20
    /// Largest image accepted, in pixels, checked from the header before decoding (413 beyond).
    public var maxImagePixels = 40_000_000
    /// Largest overlay drawn, in pixels: a larger photo is drawn scaled down to fit (the
    /// response says so in `X-Overlay-Size`), so a small upload cannot cost a huge picture.
    public var maxOverlayPixels = 4_194_304
    /// Model passes one heatmap may cost (Grad-CAM 1; Score-CAM and Ablation-CAM one per channel of its
    /// layer: 1281 at the bundled model's default layer); dearer requests get 422 too_costly.
    public var maxHeatmapPasses = 2048
    /// Model passes one comparison of methods (`POST /heatmap/compare`) may cost in all: each
    /// method's map plus its metrics (deletion/insertion 51 each, drop 2, ROAD 19). Every
    /// method with the default metrics at the bundled model's default layer costs 4087.
    public var maxComparePasses = 8192
    /// Seconds a connection may idle before it is closed.
    public var idleTimeoutSeconds = 60.0
    /// Seconds a request body may take from its headers to its last byte (408 beyond).
    public var bodyTimeoutSeconds = 30.0
    /// Open connections at once; a connection beyond it gets 503 and is closed at once.
    public var maxConnections = 1024
    /// Open connections one client (address) may have at once, below `maxConnections`, so
    /// one client's idle or slow sockets cannot take every slot.
    public var maxConnectionsPerClient = 64
    /// Proxies (addresses or networks) whose `X-Forwarded-For` names the client: a request
    /// from one of them is counted against the last address in that header that is not a proxy.
    public var trustedProxies: [String] = []
    /// Parts a multipart/form-data body may have (413 beyond).
    public var maxFormParts = 64

    // model
    /// Keras model (.h5/.keras) or ConvLens profile (.json); empty = the bundled model.
    public var modelPath = ""

    // compute
    /// Threads that run model computations (each uses `ompThreads` OpenMP threads).
    public var computeThreads = 1
    /// OpenMP threads per compute thread; 0 = all cores.
    public var ompThreads = 0
    /// Interactive computations waiting for a compute thread before new ones get 429.
    public var maxPendingComputations = 16
    /// Model passes one client's interactive computations in flight may cost beyond the
    /// first one (a Score-CAM at the bundled model's default layer is 1,281); more get 429.
    public var maxPendingCostPerClient = 4096
    /// The share of compute time jobs get while interactive requests also wait (and the
    /// rest for those): neither a stream of predictions stops a grid nor a grid the predictions.
    public var jobShare = 0.4
    /// Milliseconds a computation keeps a compute slot before it hands it on, at its next
    /// boundary (a stage of a model pass, a step of a job), to more deserving work.
    public var quantumMilliseconds = 10.0
    /// Memory one request may hold at its peak (`MemoryEstimate`: a filter grid's
    /// activations kept for the backward pass × count × size², its optimiser state and
    /// result), checked before it is queued; dearer requests get 422 too_costly.
    /// 0: `defaultMaxRequestBytes`, half the machine's memory shared by the job workers.
    public var maxRequestBytes = 0
    /// What filter visualisations' convolutions may use (`Numerics`); predictions,
    /// activations and heatmaps are exact unless their request asks. nil: the configured value
    /// was neither `exact` nor `fast` (`validate()` says so).
    public var filterNumerics: Numerics? = .exact

    // jobs
    /// Filter jobs running at once.
    public var jobWorkers = 1
    /// Jobs waiting to run before new ones get 429.
    public var maxQueuedJobs = 64
    /// How long `GET /filters/...` waits for an uncached result before answering 202.
    public var jobWaitSeconds = 10.0
    /// A job running longer than this fails with a timeout.
    public var jobTimeoutSeconds = 600.0
    /// Bytes of finished jobs' statuses kept for `GET /jobs/{id}` (`FinishedJobs`: failed
    /// and cancelled ones go first, done ones last).
    public var finishedJobBytes = 16 << 20
    /// At shutdown, how long running jobs may go on before they are cancelled.
    public var shutdownGraceSeconds = 20.0
    /// Where jobs and finished results live: this process (`memory`) or a PostgreSQL
    /// shared by every replica and worker (`postgres`, with `database.url`).
    public var jobBackend = JobBackendKind.memory
    /// `postgres://user[:password]@host[:port]/database`; setting it implies `postgres`.
    public var databaseURL = ""
    /// Seconds one statement or transaction may take before it counts as PostgreSQL being
    /// unavailable (migration: six times this).
    public var databaseTimeoutSeconds = 5.0
    /// A claimed job's lease: renewed every third of it while the job runs; a job whose
    /// lease runs out (its process died) goes back to the queue.
    public var leaseSeconds = 30.0
    /// Leases a job may lose before it fails with the reason.
    public var maxAttempts = 3

    // cache
    /// Directory of the on-disk result cache; empty disables it.
    public var cacheDir = ".cache/convlens"
    /// Bytes of results kept in memory (LRU).
    public var memoryCacheBytes = 256 << 20
    /// Bytes of result files the cache directory may hold; least recently used files are
    /// removed beyond it (0: nothing is written to disk).
    public var diskCacheBytes = 4 << 30
    /// Bytes one stored result may have (a comparison's document is bounded by its methods ×
    /// overlay_size² before it runs); larger requests get 422 too_costly.
    public var maxEntryBytes = 64 << 20

    // gallery
    /// Pre-render every conv layer's filter grid in the background at start (bulk priority).
    public var prerenderGallery = false
    /// Filters per pre-rendered grid.
    public var galleryCount = 16
    /// Folders of PNG/JPEG images whose dataset examples are indexed (comma-separated in
    /// the configuration); empty: `<public_dir>/samples` and `<public_dir>/dataset`.
    public var datasetDirs: [String] = []
    /// Examples kept per channel in the dataset index.
    public var datasetK = 9

    // filters (defaults of GET /filters)
    public var filterSize = 150
    public var filterMaxSteps = 1000
    public var filterMaxCount = 256

    public init() {}

    /// The folders indexed for dataset examples (`gallery.dataset_dir`, or the defaults).
    public var datasetFolders: [String] {
        datasetDirs.isEmpty ? [publicDir + "/samples", publicDir + "/dataset"] : datasetDirs
    }

    /// The memory one request may hold: `maxRequestBytes`, or when it is 0 half of the
    /// machine's memory divided among the jobs that can hold their state at once
    /// (`jobs.workers`, and one more urgent job that preempts them while they keep theirs),
    /// leaving the other half to the model, the caches and the interactive requests.
    public var requestByteLimit: Int {
        maxRequestBytes > 0 ? maxRequestBytes : Self.machineMemoryBytes / 2 / (max(1, jobWorkers) + 1)
    }

    /// The bytes one result may have: `maxEntryBytes`, and never more than the memory
    /// cache holds (one entry must not be able to push out all the others).
    public var resultByteLimit: Int {
        memoryCacheBytes > 0 ? min(maxEntryBytes, memoryCacheBytes) : maxEntryBytes
    }

    /// The memory this process may use: the physical memory, or the container's cgroup
    /// limit when that is lower.
    public static let machineMemoryBytes: Int = {
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        let limits = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"].compactMap { path in
            (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return min(physical, limits.filter { $0 > 0 }.min() ?? physical)
    }()

    /// Reads every key from a configuration reader; missing keys keep their defaults.
    public init(reader c: ConfigReader) {
        let d = ServerSettings()
        host = c.string(forKey: "server.host", default: d.host)
        port = c.int(forKey: "server.port", default: d.port)
        publicDir = c.string(forKey: "server.public_dir", default: d.publicDir)
        maxBodyBytes = c.int(forKey: "server.max_body_bytes", default: d.maxBodyBytes)
        maxImagePixels = c.int(forKey: "server.max_image_pixels", default: d.maxImagePixels)
        maxOverlayPixels = c.int(forKey: "server.max_overlay_pixels", default: d.maxOverlayPixels)
        maxHeatmapPasses = c.int(forKey: "server.max_heatmap_passes", default: d.maxHeatmapPasses)
        maxComparePasses = c.int(forKey: "server.max_compare_passes", default: d.maxComparePasses)
        idleTimeoutSeconds = c.double(forKey: "server.idle_timeout_seconds", default: d.idleTimeoutSeconds)
        bodyTimeoutSeconds = c.double(forKey: "server.body_timeout_seconds", default: d.bodyTimeoutSeconds)
        maxConnections = c.int(forKey: "server.max_connections", default: d.maxConnections)
        maxFormParts = c.int(forKey: "server.max_form_parts", default: d.maxFormParts)
        maxConnectionsPerClient = c.int(forKey: "server.max_connections_per_client", default: d.maxConnectionsPerClient)
        trustedProxies = c.string(forKey: "server.trusted_proxies", default: "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        modelPath = c.string(forKey: "model.path", default: d.modelPath)
        computeThreads = c.int(forKey: "compute.threads", default: d.computeThreads)
        ompThreads = c.int(forKey: "compute.omp_threads", default: d.ompThreads)
        maxPendingComputations = c.int(forKey: "compute.max_pending", default: d.maxPendingComputations)
        maxPendingCostPerClient = c.int(forKey: "compute.max_pending_per_client", default: d.maxPendingCostPerClient)
        jobShare = c.double(forKey: "compute.job_share", default: d.jobShare)
        quantumMilliseconds = c.double(forKey: "compute.quantum_ms", default: d.quantumMilliseconds)
        maxRequestBytes = c.int(forKey: "compute.max_request_bytes", default: d.maxRequestBytes)
        filterNumerics = Numerics(rawValue: c.string(forKey: "compute.numerics", default: d.filterNumerics?.rawValue ?? ""))
        jobWorkers = c.int(forKey: "jobs.workers", default: d.jobWorkers)
        maxQueuedJobs = c.int(forKey: "jobs.max_queued", default: d.maxQueuedJobs)
        jobWaitSeconds = c.double(forKey: "jobs.wait_seconds", default: d.jobWaitSeconds)
        jobTimeoutSeconds = c.double(forKey: "jobs.timeout_seconds", default: d.jobTimeoutSeconds)
        finishedJobBytes = c.int(forKey: "jobs.finished_bytes", default: d.finishedJobBytes)
        shutdownGraceSeconds = c.double(forKey: "jobs.shutdown_grace_seconds", default: d.shutdownGraceSeconds)
        databaseURL = c.string(forKey: "database.url", default: d.databaseURL)
        databaseTimeoutSeconds = c.double(forKey: "database.timeout_seconds", default: d.databaseTimeoutSeconds)
        let backend = c.string(forKey: "jobs.backend", default: databaseURL.isEmpty ? d.jobBackend.rawValue : "postgres")
        jobBackend = JobBackendKind(rawValue: backend) ?? .invalid
        leaseSeconds = c.double(forKey: "jobs.lease_seconds", default: d.leaseSeconds)
        maxAttempts = c.int(forKey: "jobs.max_attempts", default: d.maxAttempts)
        cacheDir = c.string(forKey: "cache.dir", default: d.cacheDir)
        memoryCacheBytes = c.int(forKey: "cache.memory_bytes", default: d.memoryCacheBytes)
        diskCacheBytes = c.int(forKey: "cache.disk_bytes", default: d.diskCacheBytes)
        maxEntryBytes = c.int(forKey: "cache.max_entry_bytes", default: d.maxEntryBytes)
        prerenderGallery = c.bool(forKey: "gallery.prerender", default: d.prerenderGallery)
        galleryCount = c.int(forKey: "gallery.count", default: d.galleryCount)
        datasetDirs = c.string(forKey: "gallery.dataset_dir", default: "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        datasetK = c.int(forKey: "gallery.dataset_k", default: d.datasetK)
        filterSize = c.int(forKey: "filters.size", default: d.filterSize)
        filterMaxSteps = c.int(forKey: "filters.max_steps", default: d.filterMaxSteps)
        filterMaxCount = c.int(forKey: "filters.max_count", default: d.filterMaxCount)
    }

    /// Settings that make no sense stop start-up with a message naming the key.
    public func validate() throws {
        func need(_ ok: Bool, _ key: String, _ rule: String) throws {
            if !ok { throw ServerStartupError("configuration key \(key) \(rule)") }
        }
        try need((0...65535).contains(port), "server.port", "must be in 0...65535, got \(port)")
        do { _ = try TrustedProxies(trustedProxies) } catch {
            throw ServerStartupError("configuration key server.trusted_proxies: \(error)")
        }
        try need(maxBodyBytes >= 1024, "server.max_body_bytes", "must be at least 1024, got \(maxBodyBytes)")
        try need(maxImagePixels >= 1, "server.max_image_pixels", "must be at least 1")
        try need(maxOverlayPixels >= 1, "server.max_overlay_pixels", "must be at least 1")
        try need(maxHeatmapPasses >= 1, "server.max_heatmap_passes", "must be at least 1")
        try need(maxComparePasses >= 1, "server.max_compare_passes", "must be at least 1")
        try need(idleTimeoutSeconds > 0 && idleTimeoutSeconds <= 86_400, "server.idle_timeout_seconds", "must be in (0, 86400]")
        try need(bodyTimeoutSeconds > 0 && bodyTimeoutSeconds <= 86_400, "server.body_timeout_seconds", "must be in (0, 86400]")
        try need((1...1_000_000).contains(maxConnections), "server.max_connections", "must be in 1...1000000, got \(maxConnections)")
        try need(
            (1...1_000_000).contains(maxConnectionsPerClient), "server.max_connections_per_client",
            "must be in 1...1000000, got \(maxConnectionsPerClient)")
        try need((1...100_000).contains(maxFormParts), "server.max_form_parts", "must be in 1...100000, got \(maxFormParts)")
        try need((1...64).contains(computeThreads), "compute.threads", "must be in 1...64, got \(computeThreads)")
        try need((0...256).contains(ompThreads), "compute.omp_threads", "must be in 0...256, got \(ompThreads)")
        try need(maxPendingComputations >= 1, "compute.max_pending", "must be at least 1")
        try need(maxPendingCostPerClient >= 1, "compute.max_pending_per_client", "must be at least 1")
        try need(jobShare >= 0.05 && jobShare <= 0.95, "compute.job_share", "must be in 0.05...0.95, got \(jobShare)")
        try need(
            quantumMilliseconds >= 0 && quantumMilliseconds <= 10_000, "compute.quantum_ms",
            "must be in 0...10000, got \(quantumMilliseconds)")
        try need(maxRequestBytes >= 0, "compute.max_request_bytes", "must be ≥ 0 (0: half the memory / (jobs.workers + 1))")
        try need(filterNumerics != nil, "compute.numerics", "must be exact or fast")
        try need((0...64).contains(jobWorkers), "jobs.workers", "must be in 0...64, got \(jobWorkers)")
        try need(
            jobWorkers > 0 || jobBackend == .postgres, "jobs.workers",
            "may be 0 (an API-only replica) only with jobs.backend: postgres, where other processes run the jobs")
        try need(jobBackend != .invalid, "jobs.backend", "must be memory or postgres")
        try need(jobBackend != .postgres || !databaseURL.isEmpty, "database.url", "is needed with jobs.backend: postgres")
        try need(
            databaseTimeoutSeconds >= 0.1 && databaseTimeoutSeconds <= 600, "database.timeout_seconds",
            "must be in 0.1...600, got \(databaseTimeoutSeconds)")
        if !databaseURL.isEmpty {
            do { _ = try DatabaseURL(databaseURL) } catch { throw ServerStartupError("configuration key database.url \(error)") }
        }
        try need(leaseSeconds >= 1, "jobs.lease_seconds", "must be at least 1")
        try need((1...100).contains(maxAttempts), "jobs.max_attempts", "must be in 1...100")
        try need(maxQueuedJobs >= 1, "jobs.max_queued", "must be at least 1")
        try need(jobWaitSeconds >= 0, "jobs.wait_seconds", "must be ≥ 0")
        try need(jobTimeoutSeconds > 0, "jobs.timeout_seconds", "must be positive")
        try need(finishedJobBytes >= 4096, "jobs.finished_bytes", "must be at least 4096, got \(finishedJobBytes)")
        try need(shutdownGraceSeconds >= 0, "jobs.shutdown_grace_seconds", "must be ≥ 0")
        try need(memoryCacheBytes >= 0, "cache.memory_bytes", "must be ≥ 0")
        try need(diskCacheBytes >= 0, "cache.disk_bytes", "must be ≥ 0 (0: nothing is written to disk)")
        try need(maxEntryBytes >= 1 << 20, "cache.max_entry_bytes", "must be at least 1048576, got \(maxEntryBytes)")
        try need((1...1024).contains(galleryCount), "gallery.count", "must be in 1...1024")
        try need(DatasetIndexRequest.kRange.contains(datasetK), "gallery.dataset_k", "must be in 1...64, got \(datasetK)")
        try need((8...1024).contains(filterSize), "filters.size", "must be in 8...1024")
        try need((1...10_000).contains(filterMaxSteps), "filters.max_steps", "must be in 1...10000")
        try need((1...1024).contains(filterMaxCount), "filters.max_count", "must be in 1...1024")
    }
}

/// A problem that stops the server from starting (bad configuration, missing model).
public struct ServerStartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where jobs and finished results live.
public enum JobBackendKind: String, Sendable {
    case memory, postgres
    /// A configured value that is neither (reported by `validate`).
    case invalid
}
