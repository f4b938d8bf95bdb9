#if canImport(Glibc)
import Glibc
#endif

/// OpenMP threads (oneDNN's) that wait at a barrier spin by default. When another
/// process holds one of the cores, a spinning thread waits for a descheduled
/// one, every parallel region: measured here with one core busy, a forward
/// pass of the bundled model took 584 ms instead of 21 ms. Sleeping waiters
/// (OMP_WAIT_POLICY=PASSIVE) cost nothing measurable on an idle machine, so
/// they are the default. libgomp reads the variable when it is loaded — before
/// `main` — so the process sets it and re-executes itself once; a value the
/// user set is left alone.
enum WaitPolicy {
    static func passiveUnlessSet() {
        guard getenv("OMP_WAIT_POLICY") == nil else { return }
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
        // execv only returns on failure; then this process runs on, spinning.
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}
