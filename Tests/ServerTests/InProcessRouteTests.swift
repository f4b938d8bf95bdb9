import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Server
import Synchronization
import Testing
import Visualization

/// Stands in for the model's drawing in tests of the HTTP logic: answers every request
/// with bytes naming its kind, counts what it drew, and holds jobs (requests that report
/// progress) until `release()`, so a test decides when a job finishes.
final class StubRenderer: Renderer {
    private let drawn = Mutex<[String]>([])
    private let open = Atomic<Bool>(false)

    init(holdingJobs: Bool) { open.store(!holdingJobs, ordering: .relaxed) }

    var kindsDrawn: [String] { drawn.withLock { $0 } }
    func release() { open.store(true, ordering: .relaxed) }

    func render(
        canonical request: some RenderRequest, input: RenderInput?, limits: RenderLimits, progress: (RenderProgress) -> Bool
    ) throws -> Rendered {
        let kind = type(of: request).kind
        if let job = request.jobPolicy(address: ContentAddress(hex: ""), background: false) {
            // On a compute thread, never an event loop: waiting here holds only the job.
            while !open.load(ordering: .relaxed) {
                guard progress(RenderProgress(step: 0, steps: job.steps, meanLoss: .nan)) else { throw VisualizationError.cancelled }
                Thread.sleep(forTimeInterval: 0.005)
            }
        }
        drawn.withLock { $0.append(kind) }
        return Rendered(body: Data("stub \(kind)\n".utf8), format: .png, facts: [Fact("Stub", kind)])
    }
}

/// The application `convlens serve` runs, driven through Hummingbird's router test
/// framework (no socket), with the pictures drawn by `StubRenderer`: the routes' answers
/// (202, 304, 412, 413, 429) without the model's computation.
func withInProcessApp(
    holdingJobs: Bool = false, _ change: (inout ServerSettings) -> Void = { _ in },
    _ test: @Sendable (any TestClientProtocol, StubRenderer) async throws -> Void
) async throws {
    let settings = testSettings { s in
        s.cacheDir = ""
        change(&s)
    }
    let renderer = StubRenderer(holdingJobs: holdingJobs)
    let service = try ConvLensService(
        settings: settings, session: bundled.session, modelDigest: bundled.digest, renderer: renderer)
    var logger = Logger(label: "convlens-in-process")
    logger.logLevel = .warning
    let app = ConvLensServer.application(service: service, logger: logger)
    try await app.test(.router) { client in
        try await renderer.releasing(service) { try await test(client, renderer) }
    }
}

extension StubRenderer {
    /// Runs `body`, then (whether it threw or not) lets held jobs go and drains `service`.
    func releasing(_ service: ConvLensService, _ body: () async throws -> Void) async throws {
        let outcome: Result<Void, any Error>
        do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
        release()
        await service.drain()
        try outcome.get()
    }
}

@Suite struct InProcessRouteTests {
    static let filter = "/filters/stem_activation/3?steps=2&size=32"

    @Test func aHeatmapAlreadyHeldIsAnswered412WithItsETag() async throws {
        try await withInProcessApp { client, renderer in
            let photo = ByteBuffer(bytes: try sample("chelsea.png"))
            let first = try await client.execute(
                uri: "/heatmap?method=gradcam", method: .post, headers: [.contentType: "image/png"], body: photo)
            #expect(first.status == .ok)
            #expect(String(buffer: first.body) == "stub heatmap\n")
            #expect(first.headers[HTTPField.Name("X-Stub")!] == "heatmap")
            let etag = try #require(first.headers[.eTag])

            let again = try await client.execute(
                uri: "/heatmap?method=gradcam", method: .post, headers: [.contentType: "image/png", .ifNoneMatch: etag], body: photo)
            #expect(again.status == .preconditionFailed)
            #expect(again.headers[.eTag] == etag)
            let other = try await client.execute(
                uri: "/heatmap?method=gradcam&alpha=0.5", method: .post, headers: [.contentType: "image/png", .ifNoneMatch: etag],
                body: photo)
            #expect(other.status == .ok, "other parameters, another address")
            #expect(other.headers[.eTag] != etag)
            #expect(renderer.kindsDrawn == ["heatmap", "heatmap"], "the 412 draws nothing")
        }
    }

    @Test func aBodyOverTheLimitIs413AndDrawsNothing() async throws {
        try await withInProcessApp({ $0.maxBodyBytes = 1024 }) { client, renderer in
            let big = ByteBuffer(bytes: [UInt8](repeating: 0x89, count: 5000))
            for headers: HTTPFields in [[.contentType: "image/png"], [.contentType: "image/png", .contentLength: "5000"]] {
                let r = try await client.execute(uri: "/heatmap", method: .post, headers: headers, body: big)
                #expect(r.status == .contentTooLarge)
                #expect(String(buffer: r.body).contains("\"body_too_large\""))
            }
            let small = try await client.execute(
                uri: "/heatmap", method: .post, headers: [.contentType: "image/png"], body: ByteBuffer(bytes: [0x89]))
            #expect(small.status != .contentTooLarge, "a body within the limit is read")
            #expect(renderer.kindsDrawn.isEmpty)
        }
    }

    @Test func aHeatmapDearerThanAllowedIsRefusedBeforeItsBodyIsRead() async throws {
        try await withInProcessApp({ s in
            s.maxBodyBytes = 1024
            s.maxHeatmapPasses = 4
        }) { client, renderer in
            // A body over the limit: answered 413 if it were read first.
            let big = ByteBuffer(bytes: [UInt8](repeating: 0x89, count: 5000))
            let dear = try await client.execute(
                uri: "/heatmap?method=scorecam", method: .post, headers: [.contentType: "image/png"], body: big)
            #expect(dear.status == .unprocessableContent)
            #expect(String(buffer: dear.body).contains("\"too_costly\""))
            let cheap = try await client.execute(
                uri: "/heatmap?method=gradcam", method: .post, headers: [.contentType: "image/png"], body: big)
            #expect(cheap.status == .contentTooLarge)
            #expect(renderer.kindsDrawn.isEmpty)
        }
    }

    @Test func aFilterIs202UntilItsJobEndsThen200ThenNotModified() async throws {
        try await withInProcessApp(holdingJobs: true) { client, renderer in
            let queued = try await client.execute(uri: Self.filter + "&wait=0", method: .get)
            #expect(queued.status == .accepted)
            let location = try #require(queued.headers[.location])
            #expect(location.hasPrefix("/jobs/"))
            #expect(queued.headers[.retryAfter] == "2")
            let joined = try await client.execute(uri: Self.filter + "&wait=0", method: .get)
            let job = { (r: TestResponse) in
                (try? JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])?["job"] as? String
            }
            #expect(job(joined) != nil && job(joined) == job(queued), "the identical request joins the job")
            #expect(joined.headers[.location] != location, "as a request of its own")

            renderer.release()
            let done = try await client.execute(uri: Self.filter + "&wait=60", method: .get)
            #expect(done.status == .ok)
            #expect(String(buffer: done.body) == "stub filters\n")
            let etag = try #require(done.headers[.eTag])
            let status = try await client.execute(uri: location, method: .get)
            #expect(String(buffer: status.body).contains("\"state\":\"done\""))

            let cached = try await client.execute(uri: Self.filter, method: .get)
            #expect(cached.headers[HTTPField.Name("X-Cache")!] == "hit")
            let revalidated = try await client.execute(uri: Self.filter, method: .get, headers: [.ifNoneMatch: etag])
            #expect(revalidated.status == .notModified)
            #expect(revalidated.headers[.eTag] == etag)
            #expect(renderer.kindsDrawn == ["filters"], "one job for the joined requests; the cache answers after")
        }
    }

    @Test func aFullQueueIs429WithRetryAfter() async throws {
        try await withInProcessApp(holdingJobs: true, { $0.maxQueuedJobs = 1 }) { client, renderer in
            // One job runs (held), one waits: the queue is full.
            for index in [1, 2] {
                let r = try await client.execute(uri: "/filters/stem_activation/\(index)?steps=2&size=32&wait=0", method: .get)
                #expect(r.status == .accepted)
            }
            let refused = try await client.execute(uri: "/filters/stem_activation/3?steps=2&size=32&wait=0", method: .get)
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter] == "10")
            #expect(String(buffer: refused.body).contains("queue_full"))
            #expect(renderer.kindsDrawn.isEmpty, "nothing finished while held")
        }
    }
}
