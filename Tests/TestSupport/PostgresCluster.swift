import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A private PostgreSQL 15 cluster for one test process: its own directory,
/// its own port on 127.0.0.1, trust authentication for user `convlens`, and a
/// database `convlens`. Never the system's cluster on 5432. Stopped and removed
/// when the test process exits.
///
/// initdb refuses to run as root, and CI runs as root: then the directory is
/// handed to the `postgres` system user and every server binary runs through
/// `runuser -u postgres`.
public final class PostgresCluster: Sendable {
    public static let binaries = "/usr/lib/postgresql/15/bin"
    public let directory: URL
    public let port: Int
    public let username = "convlens"
    public let database = "convlens"

    /// One cluster shared by all tests that do not stop it.
    public static let shared: PostgresCluster = try! PostgresCluster()

    /// Creates, starts and registers a cluster for removal at exit.
    public init() throws {
        directory = scratchURL("postgres")
        port = try Self.freePort()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 {
            try Self.run("/usr/bin/chown", ["postgres:postgres", directory.path])
        }
        runningClusters.withLock { $0.append(self) }
        _ = stopAtExit
        // -N: skip fsync of the fresh files; a test cluster needs no crash safety at creation.
        try asServer("initdb", ["-D", dataPath, "-A", "trust", "-U", username, "-N", "-E", "UTF8", "--locale=C"])
        try start()
        try asServer("createdb", ["-h", "127.0.0.1", "-p", "\(port)", "-U", username, database])
    }

    public func start() throws {
        try asServer(
            "pg_ctl",
            [
                "-D", dataPath, "-l", directory.appendingPathComponent("log").path, "-w",
                "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1", "start",
            ])
    }

    /// Fast shutdown: clients are disconnected at once, as in a real outage.
    public func stop() throws {
        try asServer("pg_ctl", ["-D", dataPath, "-m", "fast", "-w", "stop"])
    }

    /// Runs `psql -c sql` against `database` (default: `convlens`), returning
    /// unaligned output without the trailing newline.
    public func psql(_ sql: String, database: String? = nil) throws -> String {
        try asServer("psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", username, "-d", database ?? self.database, "-XAtq", "-c", sql])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private var dataPath: String { directory.appendingPathComponent("data").path }

    @discardableResult
    private func asServer(_ tool: String, _ arguments: [String]) throws -> String {
        let path = "\(Self.binaries)/\(tool)"
        if getuid() == 0 {
            return try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", path] + arguments)
        }
        return try Self.run(path, arguments)
    }

    /// Runs a command to completion with posix_spawn + waitpid, its output in a
    /// file. Not Foundation's Process: `pg_ctl start` leaves a daemon behind that
    /// inherits Process's descriptors, and waitUntilExit then never returns.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-pgcmd-\(UUID().uuidString)").path
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else { throw ClusterError(message: "cannot run \(executable): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            throw ClusterError(message: "\(executable) \(arguments.joined(separator: " ")) failed (wait status \(status)): \(text)")
        }
        return text
    }

    /// Asks the kernel for a free port. (Another process could take it before
    /// PostgreSQL binds it; pg_ctl would then fail loudly, not silently share.)
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClusterError(message: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw ClusterError(message: "bind() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

public struct ClusterError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

private let runningClusters = Mutex<[PostgresCluster]>([])
/// Registered after the scratch directory's own atexit handler, so it runs
/// before it (atexit is last-in, first-out): stop the server, then delete its files.
private let stopAtExit: Void = {
    atexit {
        for cluster in runningClusters.withLock({ $0 }) {
            _ = try? PostgresCluster.run(
                getuid() == 0 ? "/usr/sbin/runuser" : "\(PostgresCluster.binaries)/pg_ctl",
                (getuid() == 0 ? ["-u", "postgres", "--", "\(PostgresCluster.binaries)/pg_ctl"] : [])
                    + ["-D", cluster.directory.appendingPathComponent("data").path, "-m", "immediate", "stop"]
            )
        }
    }
}()
