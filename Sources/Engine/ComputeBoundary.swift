import Foundation

/// The points where long compute may give way: between the stages of every model pass
/// (forward and backward) and wherever a caller marks a step of its own. Whoever runs the
/// compute on a thread installs what happens there — the server stops work whose client
/// has gone and parks the thread while more deserving work takes its compute slot — so a
/// Score-CAM of 1,281 passes or a 512-step grid is interruptible every few milliseconds
/// without any of its code knowing about clients or schedules. Without a hook (the CLI,
/// the tests of the engine) a crossing costs one thread-local read.
public enum ComputeBoundary {
    public typealias Hook = () throws -> Void

    private final class Box {
        let hook: Hook
        init(_ hook: @escaping Hook) { self.hook = hook }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        // One key for the process; a thread's value is only set inside `with`, which clears it.
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    /// Runs `body` with `hook` called at every boundary it crosses on this thread (a hook
    /// installed around this one is restored after).
    public static func with<T>(_ hook: @escaping Hook, _ body: () throws -> T) rethrows -> T {
        let outer = pthread_getspecific(key)
        let box = Unmanaged.passRetained(Box(hook))
        pthread_setspecific(key, box.toOpaque())
        defer {
            pthread_setspecific(key, outer)
            box.release()
        }
        return try body()
    }

    /// A boundary: runs this thread's hook, which may wait or throw (the work is to stop).
    @inline(__always) public static func cross() throws {
        guard let raw = pthread_getspecific(key) else { return }
        try Unmanaged<Box>.fromOpaque(raw).takeUnretainedValue().hook()
    }
}
