import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Prometheus

/// The server's Prometheus metrics, on a registry of its own (not the process-wide
/// MetricsSystem), so several servers in one process — the tests — keep separate counts.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let queueDepth: Gauge
    let runningJobs: Gauge
    let pendingComputations: Gauge
    let cacheHits: Counter
    let cacheMisses: Counter
    let cacheCorrupt: Counter
    let cacheDiskFailures: Counter
    let cacheDiskBytes: Gauge
    let cacheDiskFiles: Gauge
    let cacheDiskEvictions: Counter
    let jobUploadBytes: Gauge
    let finishedJobBytes: Gauge
    let connectionsRefused: Counter

    static let latencyBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]
    static let jobBuckets: [Duration] = [
        .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(600),
    ]

    public init() {
        queueDepth = registry.makeGauge(name: "convlens_queue_depth", help: "Jobs waiting in the queue.")
        runningJobs = registry.makeGauge(name: "convlens_running_jobs", help: "Jobs running now.")
        pendingComputations = registry.makeGauge(
            name: "convlens_pending_computations",
            help: "Computations waiting for a compute thread.")
        cacheHits = registry.makeCounter(name: "convlens_cache_hits_total", help: "Results served from the cache.")
        cacheMisses = registry.makeCounter(name: "convlens_cache_misses_total", help: "Results not in the cache.")
        cacheCorrupt = registry.makeCounter(
            name: "convlens_cache_corrupt_total",
            help: "Cache files that failed their checksum, deleted and recomputed.")
        cacheDiskFailures = registry.makeCounter(
            name: "convlens_cache_disk_write_failures_total",
            help: "Results the cache could not write to its directory (kept in memory only), and a directory unusable at start.")
        cacheDiskBytes = registry.makeGauge(
            name: "convlens_cache_disk_bytes", help: "Bytes of result files in the cache directory (bounded by cache.disk_bytes).")
        cacheDiskFiles = registry.makeGauge(name: "convlens_cache_disk_files", help: "Result files in the cache directory.")
        cacheDiskEvictions = registry.makeCounter(
            name: "convlens_cache_disk_evictions_total",
            help: "Least recently used result files removed to keep the cache directory within cache.disk_bytes.")
        jobUploadBytes = registry.makeGauge(
            name: "convlens_job_upload_bytes", help: "Bytes of uploaded images held by jobs that have not finished.")
        finishedJobBytes = registry.makeGauge(
            name: "convlens_finished_job_bytes", help: "Bytes of finished jobs' statuses kept (bounded by jobs.finished_bytes).")
        connectionsRefused = registry.makeCounter(
            name: "convlens_connections_refused_total",
            help: "Connections refused with 503 over server.max_connections.")
    }

    func recordRequest(route: String, method: String, status: Int, duration: Duration) {
        let labels = [("route", route), ("method", method), ("status", String(status))]
        registry.makeCounter(
            name: "convlens_http_requests_total", labels: labels,
            help: "HTTP requests by route, method and status."
        ).increment()
        registry.makeDurationHistogram(
            name: "convlens_http_request_duration_seconds", labels: [("route", route), ("method", method)],
            buckets: Self.latencyBuckets, help: "HTTP request latency by route."
        ).record(duration)
    }

    func recordJob(kind: String, state: String, duration: Duration) {
        registry.makeDurationHistogram(
            name: "convlens_job_duration_seconds", labels: [("kind", kind), ("state", state)],
            buckets: Self.jobBuckets, help: "Job run time by kind and final state."
        ).record(duration)
    }

    /// Jobs claimed by this process's workers (the cluster backend).
    func recordCompute(_ event: ComputeExecutor.Event) {
        switch event {
        case .stopped(let reason):
            let why =
                reason == ComputeExecutor.Cancelled.clientGone
                ? "client_gone" : reason.contains("shutting down") ? "shutdown" : "cancelled"
            registry.makeCounter(
                name: "convlens_computations_stopped_total", labels: [("reason", why)],
                help:
                    "Computations stopped before their end: the client hung up, the request was cancelled, or the shutdown's grace passed."
            ).increment()
        case .yielded:
            registry.makeCounter(
                name: "convlens_compute_yields_total",
                help: "Times a running computation handed its compute slot to a more deserving waiter at a boundary."
            ).increment()
        case .clientOverloaded:
            registry.makeCounter(
                name: "convlens_client_overloaded_total",
                help: "Computations refused with 429 client_overloaded (compute.max_pending_per_client)."
            ).increment()
        }
    }

    func recordClaim() {
        registry.makeCounter(name: "convlens_job_claims_total", help: "Jobs this process's workers claimed.").increment()
    }

    /// Jobs whose owner went silent, found by this process's reaper.
    func recordLeaseExpiries(_ n: Int) {
        registry.makeCounter(
            name: "convlens_job_lease_expiries_total",
            help: "Jobs whose lease expired (their process died or hung): requeued, or failed after jobs.max_attempts."
        )
        .increment(by: Int64(n))
    }

    /// The queue by priority and state, as the job table (or this process's queue) has it.
    func recordQueue(_ counts: JobCounts) {
        for row in counts.detail {
            registry.makeGauge(
                name: "convlens_jobs", labels: [("priority", row.priority), ("state", row.state)],
                help: "Jobs by priority and state (the cluster's, with the postgres backend)."
            )
            .set(to: Double(row.count))
        }
    }

    /// Jobs running in this process (a worker's share of the cluster's work).
    func recordWorker(_ owner: String, running: Int) {
        registry.makeGauge(
            name: "convlens_worker_running_jobs", labels: [("worker", owner)],
            help: "Jobs running in this process."
        ).set(to: Double(running))
    }

    /// The cache directory's size, as the cache counts it.
    func recordDisk(_ stats: ResultCache.Stats) {
        cacheDiskBytes.set(to: Double(stats.diskBytes))
        cacheDiskFiles.set(to: Double(stats.diskFiles))
    }

    func recordCache(hit: Bool) {
        (hit ? cacheHits : cacheMisses).increment()
    }
}

/// One log line per request — method, path, status, duration, request id — and the
/// request metrics. Sits outside the JSON error middleware, so it sees final statuses.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let clock = ContinuousClock()
        let start = clock.now
        var status = 500
        defer {
            let elapsed = clock.now - start
            // Label by route template, not the raw path, to keep the label set bounded.
            let route = context.endpointPath ?? (status == 404 ? "unmatched" : "static")
            metrics.recordRequest(route: route, method: request.method.rawValue, status: status, duration: elapsed)
            let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            // The logger's metadata carries the request id (hb.request.id).
            context.logger.info("\(request.method) \(request.uri.path) \(status) \(String(format: "%.1f", ms)) ms")
        }
        do {
            var response = try await next(request, context)
            status = response.status.code
            response.headers[HTTPField.Name("X-Request-Id")!] = context.id
            return response
        } catch {
            status = APIError.from(error).status.code
            throw error
        }
    }
}
