import CDNNL

/// oneDNN runs on libgomp's OpenMP threads. Their count is an OpenMP
/// "internal control variable" of the CALLING thread (measured: after
/// `set(1)` on one thread, a new thread still reports 2), and oneDNN fixes a
/// primitive's thread count when it is created (the layers' plan caches key on
/// it). So every thread that runs compute calls `set` itself — the CLI on its
/// main thread, the server on each executor thread — sized together with the
/// executor so the two never oversubscribe the cores.
public enum ComputeThreads {
    /// Sets the OpenMP thread count for compute started from the calling thread.
    public static func set(_ count: Int) {
        omp_set_num_threads(Int32(max(1, count)))
    }

    /// The OpenMP thread count compute started from the calling thread will use.
    public static var current: Int { Int(omp_get_max_threads()) }
}
