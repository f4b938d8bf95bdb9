import Foundation
import JobStore
import Synchronization
import TestSupport
import Testing

/// Collects a listener's events in the background so a test can wait for them.
final class EventLog: Sendable {
    private let events = Mutex<[JobEvent]>([])
    private let consumer = Mutex<Task<Void, Never>?>(nil)

    init(_ stream: AsyncStream<JobEvent>) {
        let task = Task { [self] in
            for await event in stream { events.withLock { $0.append(event) } }
        }
        consumer.withLock { $0 = task }
    }

    func stop() { consumer.withLock { $0?.cancel() } }
    var all: [JobEvent] { events.withLock { $0 } }
    var listeningCount: Int { all.filter { $0 == .listening }.count }
    func changes(of id: UUID) -> [JobChange] {
        all.compactMap { if case .changed(let change) = $0, change.id == id { change } else { nil } }
    }
}

extension JobStoreTests {
    @Test func notificationsReachAListenerOnAnotherConnection() async throws {
        let database = try TestDatabase.fresh()
        try await withStores(2, on: database) { stores in
            let (producer, watcher) = (stores[0], stores[1])
            let log = EventLog(watcher.listen())
            defer { log.stop() }
            #expect(await eventually { log.listeningCount == 1 })

            let job = try await producer.enqueue(newJob("watched")).job
            let claimed = try #require(try await producer.claim(modelDigests: nil, owner: "w:1", lease: .seconds(30)))
            try await producer.progress(id: claimed.id, owner: "w:1", step: 5, steps: 10, loss: 1)
            try await producer.complete(
                id: claimed.id, owner: "w:1",
                result: StoredResult(key: "r-watched", contentType: "image/png", bytes: pngSizedBlob(64)))
            #expect(await eventually { log.changes(of: job.id).last?.state == .done })
            let seen = log.changes(of: job.id).map { "\($0.state.rawValue)@\($0.step)/\($0.steps)" }
            #expect(seen == ["queued@0/0", "running@0/0", "running@5/10", "done@10/10"])
        }
    }

    /// PostgreSQL goes away mid-test: calls fail fast with `.unavailable`, then
    /// work again once it is back, and the listener re-subscribes on its own.
    @Test func storeAndListenerSurviveAPostgresRestart() async throws {
        let cluster = try PostgresCluster()  // private: stopping the shared one would break other tests
        let database = try TestDatabase.fresh(in: cluster)
        try await withStores(1, on: database, timeout: .seconds(1)) { stores in
            let store = stores[0]
            let log = EventLog(store.listen())
            defer { log.stop() }
            #expect(await eventually { log.listeningCount == 1 })
            let before = try await store.enqueue(newJob("before")).job

            try cluster.stop()
            for attempt in 0..<3 {
                let started = ContinuousClock.now
                do {
                    if attempt == 0 {
                        _ = try await store.status(id: before.id)
                    } else {
                        _ = try await store.enqueue(newJob("during-\(attempt)"))
                    }
                    Issue.record("a call succeeded while PostgreSQL was down")
                } catch let error as JobStoreError {
                    guard case .unavailable = error else {
                        Issue.record("wrong error \(error)")
                        continue
                    }
                    print("outage call \(attempt): \(error) after \(ContinuousClock.now - started)")
                } catch {
                    Issue.record("untyped error \(error)")
                }
                #expect(
                    ContinuousClock.now - started < .seconds(10),
                    "calls are bounded by the 1 s operation timeout (not a hang; slack for a loaded machine)")
            }

            try cluster.start()
            let restarted = ContinuousClock.now
            let recovered = await eventually(timeout: .seconds(20)) { (try? await store.status(id: before.id)) != nil }
            #expect(recovered)
            print("store usable again \(ContinuousClock.now - restarted) after restart")
            #expect(await eventually(timeout: .seconds(20)) { log.listeningCount == 2 })
            print("listener re-subscribed \(ContinuousClock.now - restarted) after restart")
            #expect(try await store.status(id: before.id)?.state == .queued)

            let after = try await store.enqueue(newJob("after")).job
            #expect(await eventually { log.changes(of: after.id).first?.state == .queued })
        }
        try cluster.stop()
    }
}
