import Foundation
import Visualization

/// The in-process backend: `JobQueue` runs each request on this process's compute
/// threads and puts the result into this process's cache. Nothing survives the process.
struct LocalJobs: JobBackend {
    let queue: JobQueue
    let renderer: any Renderer
    let limits: RenderLimits

    func submit(
        _ request: any RenderRequest, input: RenderInput?, address: ContentAddress, priority: ComputePriority,
        resultPath: String?
    ) async throws -> JobStatus {
        try queue.submit(
            request, input: input, address: address, priority: priority, resultPath: resultPath, renderer: renderer, limits: limits)
    }

    func status(_ id: String) async throws -> JobStatus? { queue.status(id) }
    func cancel(_ id: String) async throws -> JobStatus? { queue.cancel(id) }
    func updates(_ id: String) async throws -> AsyncStream<JobStatus>? { queue.updates(id) }

    func counts() async throws -> JobCounts {
        let c = queue.counts
        return JobCounts(queued: c.queued, running: c.running)
    }

    func shutdown(deadline seconds: Double) async { await queue.shutdown(deadline: seconds) }
}

extension JobQueue {
    /// Queues a canonical request that `renderer` draws in this process (or joins the
    /// identical job), as its `jobPolicy` describes it.
    func submit(
        _ request: any RenderRequest, input: RenderInput?, address: ContentAddress, priority: ComputePriority,
        resultPath: String?, renderer: any Renderer, limits: RenderLimits
    ) throws -> JobStatus {
        let policy = try request.queuedPolicy(address: address, priority: priority)
        var uploadBytes = 0
        if case .image(let data) = input { uploadBytes = data.count }
        return try submit(
            key: address.hex, kind: policy.kind, description: policy.summary, result: resultPath ?? policy.resultPath ?? "",
            priority: priority, steps: policy.steps, uploadBytes: uploadBytes
        ) { control in
            try renderer.render(canonical: request, input: input, limits: limits) { p in
                control.report(step: p.step, steps: p.steps, loss: p.meanLoss)
            }.body
        }
    }
}
