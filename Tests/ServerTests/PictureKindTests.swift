import Foundation
import Logging
import Testing
import Visualization

@testable import Server

/// A kind of picture that exists only in this test: the model's layer count, drawn in
/// `steps` steps. What adding a kind takes is this one type and one `register` line.
struct LayerCountPicture: RenderRequest {
    static let kind = "layer-count"
    static var jobKinds: [String] { [kind] }

    var steps = 3

    func canonical(for session: ModelSession) throws -> LayerCountPicture { self }

    func jobPolicy(address: ContentAddress, background: Bool) -> JobPolicy? {
        JobPolicy(
            kind: Self.kind, priority: .interactive, steps: steps, summary: "layer count in \(steps) steps",
            resultPath: "/layer-count/\(address.hex)")
    }

    func render(
        on session: ModelSession, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        for step in 1...steps {
            guard progress(RenderProgress(step: step, steps: steps, meanLoss: Float(step))) else { throw VisualizationError.cancelled }
        }
        return Rendered(body: Data("{\"layers\":\(session.keras.layers.count)}\n".utf8), format: .json)
    }
}

/// A job queue of this process with its own cache, as `ConvLensService` makes one.
func localJobs(workers: Int = 1, maxQueued: Int = 8) -> (jobs: LocalJobs, cache: ResultCache) {
    let cache = ResultCache(capacityBytes: 1 << 20, directory: nil)
    let queue = JobQueue(
        executor: ComputeExecutor(threads: 1, ompThreads: 1, maxPending: 8), cache: cache, metrics: ServerMetrics(),
        workers: workers, maxQueued: maxQueued, timeoutSeconds: 60, finishedBytes: 16 << 20, logger: Logger(label: "test"))
    return (LocalJobs(queue: queue, renderer: bundled.session, limits: RenderLimits()), cache)
}

@Suite struct PictureKindTests {
    @Test func aToyKindRunsThroughLocalJobsEndToEnd() async throws {
        var kinds = JobKinds.standard
        kinds.register(LayerCountPicture.self)

        let (jobs, cache) = localJobs()
        let request = try LayerCountPicture(steps: 4).canonical(for: bundled.session)
        let address = request.contentAddress(model: bundled.digest)
        let queued = try await jobs.submit(request, address: address, priority: .job)
        #expect(queued.kind == "layer-count")
        #expect(queued.description == "layer count in 4 steps")
        #expect(queued.result == "/layer-count/\(address.hex)")
        #expect(queued.steps == 4)

        let done = try #require(try await jobs.wait(queued.id, seconds: 60))
        #expect(done.state == .done)
        #expect((done.step, done.steps, done.loss) == (4, 4, 4))
        let expected = Data("{\"layers\":\(bundled.session.keras.layers.count)}\n".utf8)
        #expect(cache.get(address.hex) == expected)

        // A row of the kind is read back by the registry line alone, and renders the same bytes.
        let stored = try kinds.decode(kind: "layer-count", json: StoredJob(request: request, image: nil).json)
        #expect(stored.image == nil)
        let rendered = try stored.request.render(on: bundled.session, input: nil, limits: RenderLimits()) { _ in true }
        #expect(rendered.body == expected)
        #expect(throws: JobKinds.Unreadable.self) {
            try JobKinds.standard.decode(kind: "layer-count", json: StoredJob(request: request, image: nil).json)
        }
        await jobs.shutdown(deadline: 0)
    }

    @Test func aPictureDrawnAtOnceIsNotAJob() async throws {
        let (jobs, _) = localJobs()
        let request = PredictRequest()
        await #expect(throws: NotAJob.self) {
            _ = try await jobs.submit(request, address: request.contentAddress(model: bundled.digest), priority: .job)
        }
        await jobs.shutdown(deadline: 0)
    }

    @Test func aComparisonRowKeepsItsFormat() throws {
        // `{"request": …, "image": digest}`, as rows queued before the registry were written.
        var compare = CompareRequest(methods: [.gradcam])
        compare.classChoice = "3"
        let json = StoredJob(request: compare, image: String(repeating: "a", count: 64)).json
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(Set(object.keys) == ["request", "image"])
        let stored = try JobKinds.standard.decode(kind: "compare", json: json)
        #expect(stored.image == String(repeating: "a", count: 64))
        #expect(stored.request as? CompareRequest == compare)
        let filter = FilterRequest(layer: "block1_conv1")
        let row = try JobKinds.standard.decode(kind: "filter_grid", json: StoredJob(request: filter, image: nil).json)
        #expect(row.request as? FilterRequest == filter)
        #expect(row.image == nil)
    }
}
