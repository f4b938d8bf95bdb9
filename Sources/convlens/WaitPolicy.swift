#if canImport(Glibc)
    import Glibc
#endif

/// OpenMP threads (oneDNN's) that wait at a barrier spin by default, for
/// hundreds of thousands of iterations. When another spinning process shares the
/// cores, each waits for a descheduled thread at every parallel region, and a
/// forward pass of two processes on two cores collapses many-fold. Sleeping at
/// once (OMP_WAIT_POLICY=PASSIVE) is fair but pays a futex wake-up per region,
/// which a network of many small primitives feels alone. A short spin first
/// (GOMP_SPINCOUNT=300, libgomp's count of busy-wait iterations before it sleeps)
/// catches a team that is about to arrive and still sleeps before a descheduled
/// thread could make the spin expensive; docs/performance.md (OpenMP wait policy) has the measurement
/// behind the number. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left
/// alone. libgomp reads the variables when it is loaded, before `main`, so the
/// process sets them and re-executes itself once.
enum WaitPolicy {
    static let spinCount = "300"

    static func passiveUnlessSet() {
        guard getenv("OMP_WAIT_POLICY") == nil, getenv("GOMP_SPINCOUNT") == nil else { return }
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1)
        setenv("GOMP_SPINCOUNT", spinCount, 1)
        // execv only returns on failure; then this process runs on, spinning.
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}
