#if canImport(Glibc)
    import Glibc
#endif

/// OpenMP threads (oneDNN's) that wait at a barrier spin by default. When
/// another spinning process shares the cores, each waits for a descheduled
/// thread at every parallel region: two ConvLens processes on this 2-core
/// machine took 600 ms per bundled-model forward pass instead of 25 ms with
/// sleeping waiters (OMP_WAIT_POLICY=PASSIVE; GOMP_SPINCOUNT=10000 gave 61 ms).
/// Alone on an idle machine sleeping costs ~7 ms of that 14 ms forward pass
/// (21 ms): a price worth paying against a 25-fold collapse, so sleeping is
/// the default; a dedicated host can set OMP_WAIT_POLICY=ACTIVE. libgomp reads the
/// variable when it is loaded, before `main`, so the process sets it and
/// re-executes itself once; a value the user set is left alone.
enum WaitPolicy {
    static func passiveUnlessSet() {
        guard getenv("OMP_WAIT_POLICY") == nil else { return }
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
        // execv only returns on failure; then this process runs on, spinning.
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}
