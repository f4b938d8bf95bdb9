import Foundation

/// The model-config parser, public only for the libFuzzer target in `Fuzz/` (which sees
/// this module as a library product, without `@testable`); the loader does not use it.
public enum KerasConfigFuzzing {
    /// What `KerasModel.load` does with a file's `model_config` / `config.json` text before
    /// it reads weights: `JSON.parse` (strict, then JSON5 for Python's NaN), then
    /// `ModelSpec.parse`. Returns the number of layers; throws `KerasFormatError`.
    public static func parseModelConfig(_ data: Data) throws -> Int {
        let spec = try ModelSpec.parse(try JSON.parse(data, what: "model_config"))
        return spec.layers.count
    }
}
