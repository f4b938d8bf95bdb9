import Foundation
import Synchronization
import Visualization

/// The image files of the dataset folders (`gallery.dataset_dir`) as the index sees them:
/// named `<folder name>/<file name>`, sorted, each with its size and SHA-256. Listing
/// reads the directories on every call, so an added, removed or edited file shows at
/// once; a file's digest is computed again only when its size or modification time
/// changed. Blocking file IO: call it on the compute threads, never on an event loop.
final class DatasetFolders: Sendable {
    struct Listing: Sendable {
        var files: [DatasetFile]
        /// Where each listed name is on disk, and the URL path it is served at when the
        /// folder is inside the gallery's public directory.
        var paths: [String: URL]
        var urls: [String: String]
    }

    let folders: [URL]
    let publicDir: URL
    private struct Known: Sendable {
        var bytes: Int
        var modified: Date
        var sha256: String
    }
    private let digests = Mutex<[String: Known]>([:])

    static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    init(folders: [String], publicDir: String) {
        self.folders = folders.map { URL(fileURLWithPath: $0).standardizedFileURL }
        self.publicDir = URL(fileURLWithPath: publicDir).standardizedFileURL
    }

    /// The files now. A configured folder that does not exist is skipped (the default
    /// `dataset/` may be absent); one that cannot be read is an error naming it.
    func list() throws -> Listing {
        var listing = Listing(files: [], paths: [:], urls: [:])
        let fm = FileManager.default
        for folder in folders {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            let names = try fm.contentsOfDirectory(atPath: folder.path).sorted()
                .filter { !$0.hasPrefix(".") && Self.extensions.contains(($0 as NSString).pathExtension.lowercased()) }
            for name in names {
                let url = folder.appendingPathComponent(name)
                let attributes = try fm.attributesOfItem(atPath: url.path)
                guard (attributes[.type] as? FileAttributeType) == .typeRegular else { continue }
                let bytes = (attributes[.size] as? NSNumber)?.intValue ?? 0
                let modified = attributes[.modificationDate] as? Date ?? .distantPast
                let id = "\(folder.lastPathComponent)/\(name)"
                listing.files.append(
                    DatasetFile(name: id, bytes: bytes, sha256: try digest(of: url, bytes: bytes, modified: modified)))
                listing.paths[id] = url
                if folder.path.hasPrefix(publicDir.path + "/") {
                    let relative = folder.path.dropFirst(publicDir.path.count + 1)
                    let encoded =
                        (String(relative) + "/" + name)
                        .addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? name
                    listing.urls[id] = "/" + encoded
                }
            }
        }
        // Two folders of the same name would give one name twice: keep the first.
        var seen = Set<String>()
        listing.files = listing.files.filter { seen.insert($0.name).inserted }
        return listing
    }

    private func digest(of url: URL, bytes: Int, modified: Date) throws -> String {
        if let known = digests.withLock({ $0[url.path] }), known.bytes == bytes, known.modified == modified {
            return known.sha256
        }
        let hex = try SHA256Digest.hexOfFile(at: url)
        digests.withLock { $0[url.path] = Known(bytes: bytes, modified: modified, sha256: hex) }
        return hex
    }
}
