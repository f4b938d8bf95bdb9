import Foundation
import KerasFormat

/// A Keras model config (the `model_config` attribute of an `.h5`, `config.json` of a
/// `.keras`) through the loader's JSON and config parsers.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    _ = try? KerasConfigFuzzing.parseModelConfig(data)
    return 0
}
