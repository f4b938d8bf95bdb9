import Engine
import Foundation

/// `.npy` bytes through `Tensor.decodeNPY`, the in-memory reader behind `readNPY`.
/// A tensor that decodes must survive a write and a second read unchanged in shape.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    guard let tensor = try? Tensor.decodeNPY(data) else { return 0 }
    let again = try? Tensor.decodeNPY(tensor.npyData())
    precondition(again?.shape == tensor.shape, "a decoded tensor does not round-trip")
    return 0
}
