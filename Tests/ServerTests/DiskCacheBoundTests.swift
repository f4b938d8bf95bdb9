import Foundation
import HTTPTypes
import Server
import Testing

/// The cache directory stays within `cache.disk_bytes`: least recently used files go first,
/// the files a previous run left count from start-up, and /metrics says how much is there.
@Suite(.timeLimit(.minutes(10))) struct DiskCacheBoundTests {
    func uri(_ filter: Int) -> String { "/filters/stem_activation/\(filter)?size=32&steps=1" }

    /// The result files under `directory`, oldest first, with their sizes.
    func files(in directory: String) throws -> [(name: String, bytes: Int)] {
        let fm = FileManager.default
        var found: [(name: String, bytes: Int, modified: Date)] = []
        let walker = try #require(fm.enumerator(atPath: directory))
        while let path = walker.nextObject() as? String {
            guard path.hasSuffix(".png") else { continue }
            let attributes = try fm.attributesOfItem(atPath: directory + "/" + path)
            found.append(
                (
                    (path as NSString).lastPathComponent, (attributes[.size] as? NSNumber)?.intValue ?? 0,
                    attributes[.modificationDate] as? Date ?? .distantPast
                ))
        }
        return found.sorted { $0.modified < $1.modified }.map { ($0.name, $0.bytes) }
    }

    func metric(_ name: String, _ client: TestHTTPClient) async throws -> Double {
        let text = try await client.get("/metrics").text
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(name + " ") }, "no \(name)")
        return try #require(Double(line.split(separator: " ").last ?? ""))
    }

    @Test func theDirectoryStaysWithinItsBoundLeastRecentlyUsedFirst() async throws {
        let directory = temporaryDirectory("disk-bound").path
        // A first run fills the directory with six pictures (no bound to speak of).
        try await withServer(testSettings { $0.cacheDir = directory }) { _, client in
            for filter in 0..<6 {
                let r = try await client.get(uri(filter))
                #expect(r.status == .ok, "\(r.status) \(r.text.prefix(200))")
                // Distinct modification times: the next run orders the files by them.
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let written = try files(in: directory)
        #expect(written.count == 6)
        let largest = try #require(written.map(\.bytes).max())
        // Room for three of the six, whichever they are.
        let bound = 3 * largest + largest / 2
        try await withServer(
            testSettings {
                $0.cacheDir = directory
                $0.diskCacheBytes = bound
            }
        ) { _, client in
            // At start-up the run's files are counted and the oldest removed to fit.
            var kept = try files(in: directory)
            #expect(kept.reduce(0) { $0 + $1.bytes } <= bound)
            #expect(kept.count == 3, "\(kept.map(\.name)) of \(written.map(\.name))")
            #expect(kept.map(\.name) == Array(written.suffix(kept.count).map(\.name)), "the newest files are kept")
            #expect(try await metric("convlens_cache_disk_bytes", client) == Double(kept.reduce(0) { $0 + $1.bytes }))
            #expect(try await metric("convlens_cache_disk_evictions_total", client) == Double(6 - kept.count))
            // Reading the oldest kept file makes it the most recently used: the next write
            // removes the one after it instead.
            let oldest = kept[0].name
            let second = kept[1].name
            let filterOfOldest = try #require(
                (3..<6).first { written[$0].name == oldest }, "\(oldest)")
            let read = try await client.get(uri(filterOfOldest))
            #expect(read.status == .ok && read.header("X-Cache") == "hit", "\(read.status) \(read.header("X-Cache") ?? "")")
            for filter in 6..<9 {
                let r = try await client.get(uri(filter))
                #expect(r.status == .ok, "\(r.status) \(r.text.prefix(200))")
                kept = try files(in: directory)
                #expect(kept.reduce(0) { $0 + $1.bytes } <= bound, "\(kept)")
                if filter == 6 {
                    #expect(kept.contains { $0.name == oldest } && !kept.contains { $0.name == second }, "\(kept.map(\.name))")
                }
            }
            #expect(try await metric("convlens_cache_disk_bytes", client) == Double(kept.reduce(0) { $0 + $1.bytes }))
            #expect(try await metric("convlens_cache_disk_files", client) == Double(kept.count))
            #expect(try await metric("convlens_cache_disk_evictions_total", client) >= Double(6 - 3 + 3))
        }
    }

    @Test func aResultLargerThanTheBoundIsServedFromMemory() async throws {
        let directory = temporaryDirectory("disk-tiny").path
        try await withServer(
            testSettings {
                $0.cacheDir = directory
                $0.diskCacheBytes = 100
            }
        ) { _, client in
            let first = try await client.get(uri(0))
            #expect(first.status == .ok)
            #expect(try files(in: directory).isEmpty)
            let again = try await client.get(uri(0))
            #expect(again.status == .ok && again.header("X-Cache") == "hit")
        }
    }
}
