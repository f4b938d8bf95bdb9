import Foundation

/// The committed inputs of one fuzz target (Tests/Fixtures/fuzz/TARGET; see scripts/fuzz),
/// which each test target's FuzzRegressionTests replays.
public enum FuzzInputs {
    public static func directory(_ target: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/fuzz/\(target)")
    }

    /// File names, sorted; the folder's README and hidden files are not inputs.
    public static func names(_ target: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory(target).path)) ?? [])
            .filter { !$0.hasPrefix(".") && $0 != "README.md" }.sorted()
    }
}
