import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// libgomp's entry points (oneDNN links libgomp, so they are loaded), found
/// once at run time: <omp.h> is not on Swift's include path.
private struct OpenMP: @unchecked Sendable {
    typealias Region = @convention(c) (UnsafeMutableRawPointer?) -> Void
    let parallel: @convention(c) (Region, UnsafeMutableRawPointer?, UInt32, UInt32) -> Void
    let threadNum: @convention(c) () -> Int32
    let numThreads: @convention(c) () -> Int32

    struct Job {
        let body: @Sendable (Int, Int) -> Void
    }

    static let shared: OpenMP? = {
        let all = UnsafeMutableRawPointer(bitPattern: 0)  // RTLD_DEFAULT
        guard let p = dlsym(all, "GOMP_parallel"), let t = dlsym(all, "omp_get_thread_num"),
            let n = dlsym(all, "omp_get_num_threads")
        else { return nil }
        return OpenMP(
            parallel: unsafeBitCast(p, to: (@convention(c) (Region, UnsafeMutableRawPointer?, UInt32, UInt32) -> Void).self),
            threadNum: unsafeBitCast(t, to: (@convention(c) () -> Int32).self),
            numThreads: unsafeBitCast(n, to: (@convention(c) () -> Int32).self))
    }()
}

/// Splits `0..<count` into contiguous chunks and runs `body` on them on up to
/// `ComputeThreads.current` threads (the calling thread's compute budget, the
/// same one oneDNN uses), so the memory-bound Swift loops between oneDNN
/// primitives (ReLU, max-pool backward) use every compute core instead of one.
/// Work below `grain` items per thread stays on the calling thread. Chunks
/// never overlap, so `body` may write its own range without locks; the call
/// returns when every chunk is done.
///
/// The chunks run on the calling thread's OpenMP team (`GOMP_parallel`, what
/// `#pragma omp parallel` compiles to): the very threads oneDNN just ran on,
/// which spin-wait for the next parallel region for a while after each
/// primitive. Chunks on Dispatch's pool instead shared the cores with that
/// spinning thread (libgomp's spin loops were ~25% of a batch-1 profile).
/// Quiet machine, same conditions, A/B twice: forward 159 → 154 ms, Grad-CAM
/// 173 → 170, ascent step 109 → 106, ascent at batch 8 873 → 851. (Under heavy
/// contention from other jobs the order reversed; the benchmark is meant for a
/// quiet machine.) Dispatch is the fallback if libgomp's symbols are missing.
func parallelFor(_ count: Int, grain: Int = 1 << 15, _ body: @Sendable (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let threads = min(ComputeThreads.current, max(1, count / max(1, grain)))
    if threads <= 1 {
        body(0..<count)
        return
    }
    if OpenMP.shared != nil {
        onTeam(threads) { t, n in
            let lo = count * t / n
            let hi = count * (t + 1) / n
            if lo < hi { body(lo..<hi) }
        }
        return
    }
    // A few chunks per thread even out a thread that starts late.
    let chunks = min(count, threads * 4)
    DispatchQueue.concurrentPerform(iterations: chunks) { i in
        let lo = count * i / chunks
        let hi = count * (i + 1) / chunks
        if lo < hi { body(lo..<hi) }
    }
}

/// Runs `body(t, n)` once on each thread t of a team of n ≤ `threads`
/// threads — the calling thread's OpenMP team (`GOMP_parallel`), or without
/// libgomp Dispatch's pool — and returns when every call has returned. The
/// runtime may start fewer threads than asked: `body` must share out its
/// work by `n`, or take it from a common pool.
func onTeam(_ threads: Int, _ body: @Sendable (_ t: Int, _ n: Int) -> Void) {
    guard let omp = OpenMP.shared else {
        DispatchQueue.concurrentPerform(iterations: threads) { t in body(t, threads) }
        return
    }
    withoutActuallyEscaping(body) { body in
        var job = OpenMP.Job(body: body)
        withUnsafeMutablePointer(to: &job) { p in
            omp.parallel(
                { raw in
                    let job = raw!.assumingMemoryBound(to: OpenMP.Job.self)
                    guard let omp = OpenMP.shared else { return }
                    job.pointee.body(Int(omp.threadNum()), Int(omp.numThreads()))
                }, UnsafeMutableRawPointer(p), UInt32(threads), 0)
        }
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
    private init(base: UnsafeMutablePointer<T>?) { self.base = base }
    /// The same buffer from element `offset` on.
    static func + (pointer: SharedPointer, offset: Int) -> SharedPointer { SharedPointer(base: pointer.base.map { $0 + offset }) }
}
