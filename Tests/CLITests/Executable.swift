import Foundation

/// The repository root: the tests run the executable from here, as a user would.
let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The built executable sits next to the test bundle in the build products folder.
let executable: URL = {
    var dir = Bundle.main.bundleURL
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("convlens")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return root.appendingPathComponent(".build/debug/convlens")
}()
