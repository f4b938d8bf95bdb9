import Foundation
import JobStore
import NIOCore
import TestSupport
import Testing

extension JobStoreTests {
    @Test func megabyteResultRoundTripsByPutAndByComplete() async throws {
        let database = try TestDatabase.fresh()
        try await withStore(on: database) { store in
            let blob = pngSizedBlob(1 << 20)
            let stored = StoredResult(key: "sha256:put", contentType: "image/png", metadataJSON: #"{"layer": "conv1"}"#, bytes: blob)
            #expect(try await store.results.put(stored))
            #expect(try await store.results.put(stored) == false)  // write-once
            let read = try #require(try await store.results.get(key: "sha256:put"))
            #expect(read.bytes == blob && read.bytes.readableBytes == 1 << 20)
            #expect(read.contentType == "image/png" && read.metadataJSON == #"{"layer": "conv1"}"# && read.createdAt != nil)
            #expect(try await store.results.get(key: "sha256:missing") == nil)
            #expect(try await store.results.contains(key: "sha256:missing") == false)

            // complete() writes the result and marks the job done in one statement.
            let job = try await store.enqueue(newJob("picture")).job
            _ = try #require(try await store.claim(modelDigests: nil, owner: "w:1", lease: .seconds(30)))
            #expect(try await store.results.contains(key: "sha256:done") == false)
            let other = pngSizedBlob(1 << 20)
            try await store.complete(
                id: job.id, owner: "w:1", result: StoredResult(key: "sha256:done", contentType: "image/png", bytes: other))
            let done = try #require(try await store.status(id: job.id))
            #expect(done.state == .done && done.resultKey == "sha256:done")
            #expect(try await store.results.get(key: "sha256:done")?.bytes == other)
            // A finished job accepts nothing more from its former owner.
            await #expect(throws: JobStoreError.leaseLost(job.id)) { try await store.fail(id: job.id, owner: "w:1", reason: "late") }
        }
    }
}
