import CDNNL

/// oneDNN runs on libgomp's OpenMP threads; their count is process-wide.
/// The server sizes this together with its executor so the two never
/// oversubscribe the cores.
public enum ComputeThreads {
    public static func set(_ count: Int) {
        omp_set_num_threads(Int32(max(1, count)))
    }

    public static var current: Int { Int(omp_get_max_threads()) }
}
