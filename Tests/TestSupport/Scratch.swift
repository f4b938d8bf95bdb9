import Foundation
import Synchronization

/// Scratch paths under the system temporary directory, removed when the test
/// process exits. (Not per test: a test may hand a cache directory to a second
/// server or process to check that finished work survives a restart.)
private let scratchPaths = Mutex<[URL]>([])
private let removeAtExit: Void = {
    atexit {
        for url in scratchPaths.withLock({ $0 }) { try? FileManager.default.removeItem(at: url) }
    }
}()

/// A fresh path `convlens-<name>-<uuid><suffix>` in the temporary directory
/// (nothing is created), removed with everything under it when the tests end.
public func scratchURL(_ name: String, suffix: String = "") -> URL {
    _ = removeAtExit
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-\(name)-\(UUID().uuidString)\(suffix)")
    scratchPaths.withLock { $0.append(url) }
    return url
}
