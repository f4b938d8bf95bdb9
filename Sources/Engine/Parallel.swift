import Dispatch

/// Splits `0..<count` into contiguous chunks and runs `body` on them on up to
/// `ComputeThreads.current` threads (the calling thread's compute budget, the
/// same one oneDNN uses), so the memory-bound Swift loops between oneDNN
/// primitives (ReLU, max-pool backward) use every compute core instead of one.
/// Work below `grain` items per thread stays on the calling thread. Chunks
/// never overlap, so `body` may write its own range without locks; the call
/// returns when every chunk is done.
///
/// (Tried: running the chunks on libgomp's OpenMP team via `GOMP_parallel`,
/// the threads oneDNN itself uses. It was consistently slower here than
/// Dispatch's pool — VGG16 forward at batch 1 ~430 → ~530-780 ms with the
/// cores shared with another job — so Dispatch it is.)
func parallelFor(_ count: Int, grain: Int = 1 << 15, _ body: @Sendable (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let threads = min(ComputeThreads.current, max(1, count / max(1, grain)))
    if threads <= 1 {
        body(0..<count)
        return
    }
    // A few chunks per thread even out a thread that starts late.
    let chunks = min(count, threads * 4)
    DispatchQueue.concurrentPerform(iterations: chunks) { i in
        let lo = count * i / chunks, hi = count * (i + 1) / chunks
        if lo < hi { body(lo..<hi) }
    }
}

/// A pointer that may be captured by the chunks of `parallelFor` (each chunk
/// touches a disjoint range, which the caller guarantees). Take `p` once per
/// chunk; it traps on an empty buffer's nil base, which callers never reach
/// (no chunk runs when the count is 0).
struct SharedPointer<T>: @unchecked Sendable {
    private let base: UnsafeMutablePointer<T>?
    init(_ buffer: UnsafeMutableBufferPointer<T>) { base = buffer.baseAddress }
    init(_ buffer: UnsafeBufferPointer<T>) { base = UnsafeMutablePointer(mutating: buffer.baseAddress) }
    var p: UnsafeMutablePointer<T> { base! }
}
