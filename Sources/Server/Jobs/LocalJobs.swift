import Foundation
import Visualization

/// The in-process backend: `JobQueue` runs each request on this process's compute
/// threads and puts the result into this process's cache. Nothing survives the process.
struct LocalJobs: JobBackend {
    let queue: JobQueue
    let session: ModelSession
    let limits: RenderLimits

    func submit(_ request: FilterRequest, address: ContentAddress, priority: ComputePriority) async throws -> JobStatus {
        let session = self.session
        return try queue.submit(
            key: address.hex, kind: request.jobKind, description: request.summary, result: request.resultPath,
            priority: priority, steps: request.steps ?? request.method.defaultSteps
        ) { control in
            try session.render(request) { p in control.report(step: p.step, steps: p.steps, loss: p.meanLoss) }.body
        }
    }

    func submit(_ request: CompareRequest, image: Data, address: ContentAddress) async throws -> JobStatus {
        let (session, limits) = (self.session, self.limits)
        return try queue.submit(
            key: address.hex, kind: CompareJob.kind, description: request.summary, result: CompareRequest.resultPath(address),
            priority: .job, steps: request.steps, uploadBytes: image.count
        ) { control in
            try session.render(request, input: .image(image), limits: limits) { step, steps in
                control.report(step: step, steps: steps, loss: .nan)
            }.body
        }
    }

    func submitInProcess(
        key: String, kind: String, description: String, result: String, steps: Int,
        work: @escaping @Sendable (JobControl) throws -> Data
    ) async throws -> JobStatus {
        try queue.submit(key: key, kind: kind, description: description, result: result, priority: .job, steps: steps, work: work)
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

extension FilterRequest {
    /// The job kind in statuses and metrics.
    var jobKind: String { count == 1 ? "filter" : "filter_grid" }
}
