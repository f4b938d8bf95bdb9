import Foundation
import Synchronization
import Visualization  // where SHA256Digest moves with the typed requests (same API)

/// Finished results (PNG bytes), content-addressed by a SHA-256 of the model file and
/// the parameters: in memory (LRU, bounded in bytes) and on disk, so a restart serves
/// finished work at once.
///
/// Disk layout: `<dir>/<key[0..<2]>/<key>.png`, written to a temporary file in the same
/// directory, flushed, then renamed into place — rename is atomic, so a crash leaves
/// either no file or the whole file, never half a PNG. The directory is the index:
/// nothing else needs flushing at shutdown; stray temporary files are removed at start.
///
/// Each file is the PNG followed by a trailer, `CLSHA256` and the SHA-256 of the PNG in
/// 64 hex digits, checked on every read from disk: a file damaged after it was written
/// (truncated, edited, a bad disk) is deleted, counted (`corrupt`, `onCorrupt`) and
/// treated as missing, so the result is computed again instead of served. Files of the
/// older trailer-less layout fail the check the same way and are recomputed once.
///
/// A directory that cannot be made or written (read-only, full, gone) never fails a
/// request: the result stays in memory, the failure is counted (`diskWriteFailures`) and
/// reported to `onDiskFailure`, and later writes try the disk again.
///
/// The directory holds at most `diskCapacityBytes` (files with their trailers): the files
/// there at start are counted (by modification time, oldest first), and each write beyond
/// the bound removes the least recently used files (read or written) until it fits,
/// counted in `diskEvictions`. A result larger than the whole bound stays in memory only.
public final class ResultCache: Sendable {
    public struct Stats: Sendable {
        public var entries: Int
        public var bytes: Int
        public var hits: Int
        public var diskHits: Int
        public var misses: Int
        /// Files that failed their checksum (deleted).
        public var corrupt: Int
        /// Results (or the directory at start) that could not be written to disk.
        public var diskWriteFailures: Int
        /// Bytes of the files in the directory (PNGs with their trailers), and how many.
        public var diskBytes: Int
        public var diskFiles: Int
        /// Files removed to keep the directory within `diskCapacityBytes`.
        public var diskEvictions: Int
    }

    private struct State {
        var entries: [String: (data: Data, tick: UInt64)] = [:]
        var bytes = 0
        var tick: UInt64 = 0
        var hits = 0
        var diskHits = 0
        var misses = 0
        var corrupt = 0
        var diskWriteFailures = 0
        /// Whether the last disk write failed: the failure hook hears only the first of a run.
        var diskFailing = false
        /// The directory's files by key: their size on disk and when last used.
        var files: [String: (bytes: Int, tick: UInt64)] = [:]
        var diskBytes = 0
        var diskEvictions = 0
    }

    private let state = Mutex(State())
    public let capacityBytes: Int
    public let directory: URL?
    /// Largest total size of the files in `directory`.
    public let diskCapacityBytes: Int
    private let corruptHook = Mutex<(@Sendable () -> Void)?>(nil)
    private let evictionHook = Mutex<(@Sendable () -> Void)?>(nil)
    private let diskFailureHook = Mutex<(@Sendable (_ error: String, _ firstOfRun: Bool) -> Void)?>(nil)
    /// Why the directory could not be made at start (nil: it could); the cache works from memory.
    public let startupDiskProblem: String?

    /// Called once for each damaged file found (the server counts them in its metrics).
    public func onCorrupt(_ hook: @escaping @Sendable () -> Void) {
        corruptHook.withLock { $0 = hook }
    }

    /// Called for each file removed to keep the directory within its bound (the ones
    /// removed at start, before any hook, are in `stats.diskEvictions`).
    public func onDiskEviction(_ hook: @escaping @Sendable () -> Void) {
        evictionHook.withLock { $0 = hook }
    }

    /// Called for every result that could not be written to disk, with the error (for the
    /// log: it names the file) and whether it is the first since the disk last worked.
    public func onDiskFailure(_ hook: @escaping @Sendable (_ error: String, _ firstOfRun: Bool) -> Void) {
        diskFailureHook.withLock { $0 = hook }
    }

    public init(capacityBytes: Int, directory: URL?, diskCapacityBytes: Int = .max) {
        self.capacityBytes = capacityBytes
        self.directory = directory
        self.diskCapacityBytes = diskCapacityBytes
        var problem: String?
        if let directory {
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            } catch {
                problem = "\(error)"
            }
        }
        startupDiskProblem = problem
        if problem != nil {
            state.withLock { $0.diskWriteFailures += 1 }
        } else if let directory {
            removeStrayTemporaries(in: directory)
            countFiles(in: directory)
        }
    }

    /// The result for `key`, from memory or disk.
    public func get(_ key: String) -> Data? {
        if let data = state.withLock({ s -> Data? in
            guard let e = s.entries[key] else { return nil }
            s.tick += 1
            s.entries[key] = (e.data, s.tick)
            s.files[key]?.tick = s.tick
            s.hits += 1
            return e.data
        }) {
            return data
        }
        if let data = readVerified(key) {
            remember(key, data)
            state.withLock { $0.diskHits += 1 }
            return data
        }
        state.withLock { $0.misses += 1 }
        return nil
    }

    /// Whether `key` is cached, without counting a hit or a miss. A file on disk counts
    /// only if it passes its checksum (and is then kept in memory for the `get` that follows).
    public func contains(_ key: String) -> Bool {
        if state.withLock({ $0.entries[key] != nil }) { return true }
        guard let data = readVerified(key) else { return false }
        remember(key, data)
        return true
    }

    static let trailerMagic = Data("CLSHA256".utf8)
    static let trailerLength = trailerMagic.count + 64

    /// The file's PNG if its trailer holds the PNG's SHA-256; a damaged file is deleted.
    private func readVerified(_ key: String) -> Data? {
        guard let url = fileURL(key) else { return nil }
        guard let file = try? Data(contentsOf: url) else {
            // Gone (removed from outside, or evicted meanwhile): no longer counted.
            state.withLock { s in
                if let gone = s.files.removeValue(forKey: key) { s.diskBytes -= gone.bytes }
            }
            return nil
        }
        if file.count > Self.trailerLength {
            let split = file.endIndex - Self.trailerLength
            let trailer = file[split...]
            let png = file[..<split]
            if trailer.starts(with: Self.trailerMagic),
                String(decoding: trailer.dropFirst(Self.trailerMagic.count), as: UTF8.self) == SHA256Digest.hex([png])
            {
                state.withLock { s in
                    s.tick += 1
                    s.files[key]?.tick = s.tick
                }
                return Data(png)
            }
        }
        // Only remove the file that failed: a concurrent put may have renamed a good one in.
        if let again = try? Data(contentsOf: url), again == file {
            try? FileManager.default.removeItem(at: url)
            state.withLock { s in
                if let gone = s.files.removeValue(forKey: key) { s.diskBytes -= gone.bytes }
            }
        }
        state.withLock { $0.corrupt += 1 }
        corruptHook.withLock { $0 }?()
        return nil
    }

    /// Stores a result in memory and (atomically) on disk; a disk that fails leaves it in
    /// memory only (counted and reported, never thrown).
    public func put(_ key: String, _ data: Data) {
        remember(key, data)
        let fileBytes = data.count + Self.trailerLength
        guard let url = fileURL(key), fileBytes <= diskCapacityBytes else { return }
        do {
            try write(data, to: url, key: key)
            state.withLock { s in
                s.diskFailing = false
                s.tick += 1
                if let old = s.files[key] { s.diskBytes -= old.bytes }
                s.files[key] = (fileBytes, s.tick)
                s.diskBytes += fileBytes
                evictFiles(&s, keeping: key)
            }
        } catch {
            let first = state.withLock { s -> Bool in
                s.diskWriteFailures += 1
                defer { s.diskFailing = true }
                return !s.diskFailing
            }
            diskFailureHook.withLock { $0 }?("\(error)", first)
        }
    }

    private func write(_ data: Data, to url: URL, key: String) throws {
        let dir = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let temporary = dir.appendingPathComponent(".\(key).\(UUID().uuidString).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary.path])
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            try handle.write(contentsOf: data)
            try handle.write(contentsOf: Self.trailerMagic + Data(SHA256Digest.hex([data]).utf8))
            try handle.synchronize()
            try handle.close()
            guard rename(temporary.path, url.path) == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    public var stats: Stats {
        state.withLock {
            Stats(
                entries: $0.entries.count, bytes: $0.bytes, hits: $0.hits, diskHits: $0.diskHits, misses: $0.misses,
                corrupt: $0.corrupt, diskWriteFailures: $0.diskWriteFailures,
                diskBytes: $0.diskBytes, diskFiles: $0.files.count, diskEvictions: $0.diskEvictions)
        }
    }

    /// Removes the least recently used files (never `kept`, the one just written) until the
    /// directory fits its bound. Runs under the lock, so a file chosen here is not renamed
    /// in again before it is gone (O(n) per eviction, as in memory).
    private func evictFiles(_ s: inout State, keeping kept: String?) {
        while s.diskBytes > diskCapacityBytes,
            let oldest = s.files.lazy.filter({ $0.key != kept }).min(by: { $0.value.tick < $1.value.tick })
        {
            s.files[oldest.key] = nil
            s.diskBytes -= oldest.value.bytes
            s.diskEvictions += 1
            if let url = fileURL(oldest.key) { try? FileManager.default.removeItem(at: url) }
            evictionHook.withLock { $0 }?()
        }
    }

    /// Counts the files a previous run left (least recently modified first in the LRU
    /// order), then trims them to the bound.
    private func countFiles(in directory: URL) {
        let fm = FileManager.default
        var found: [(key: String, bytes: Int, modified: Date)] = []
        for shard in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? [] {
            let dir = directory.appendingPathComponent(shard)
            for name in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? [] where name.hasSuffix(".png") {
                let key = String(name.dropLast(4))
                guard fileURL(key)?.path == dir.appendingPathComponent(name).path,
                    let attributes = try? fm.attributesOfItem(atPath: dir.appendingPathComponent(name).path),
                    let bytes = (attributes[.size] as? NSNumber)?.intValue
                else { continue }
                found.append((key, bytes, attributes[.modificationDate] as? Date ?? .distantPast))
            }
        }
        found.sort { $0.modified < $1.modified }
        state.withLock { s in
            for file in found {
                s.tick += 1
                s.files[file.key] = (file.bytes, s.tick)
                s.diskBytes += file.bytes
            }
            evictFiles(&s, keeping: nil)
        }
    }

    private func remember(_ key: String, _ data: Data) {
        guard data.count <= capacityBytes else { return }
        state.withLock { s in
            if let old = s.entries[key] { s.bytes -= old.data.count }
            s.tick += 1
            s.entries[key] = (data, s.tick)
            s.bytes += data.count
            // Evict least recently used entries until under capacity (O(n) per eviction:
            // entries are whole PNGs, so n stays in the thousands).
            while s.bytes > capacityBytes, let oldest = s.entries.min(by: { $0.value.tick < $1.value.tick }) {
                s.entries[oldest.key] = nil
                s.bytes -= oldest.value.data.count
            }
        }
    }

    private func fileURL(_ key: String) -> URL? {
        guard let directory, key.count >= 2, key.allSatisfy({ $0.isHexDigit }) else { return nil }
        return directory.appendingPathComponent(String(key.prefix(2))).appendingPathComponent("\(key).png")
    }

    private func removeStrayTemporaries(in directory: URL) {
        let fm = FileManager.default
        guard let shards = try? fm.contentsOfDirectory(atPath: directory.path) else { return }
        for shard in shards {
            let dir = directory.appendingPathComponent(shard)
            for name in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? [] where name.hasPrefix(".") && name.hasSuffix(".tmp") {
                try? fm.removeItem(at: dir.appendingPathComponent(name))
            }
        }
    }
}
