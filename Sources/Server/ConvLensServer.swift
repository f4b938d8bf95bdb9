import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Builds and runs the HTTP server around a `ConvLensService`.
public enum ConvLensServer {
    /// The configuration hierarchy: explicit values (command-line flags) first, then
    /// `CONVLENS_*` environment variables, then the config file, then the defaults.
    public static func settings(
        flags: [String: ConfigValue], configFile: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> ServerSettings {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (k, v) in flags { values[AbsoluteConfigKey(k.split(separator: ".").map(String.init))] = v }
        var providers: [any ConfigProvider] = [
            InMemoryProvider(name: "command line", values: values),
            EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: "convlens"),
        ]
        if let configFile {
            guard FileManager.default.fileExists(atPath: configFile) else {
                throw ServerStartupError("config file not found: \(configFile)")
            }
            do {
                if configFile.hasSuffix(".json") {
                    providers.append(try await FileProvider<JSONSnapshot>(filePath: .init(configFile)))
                } else {
                    providers.append(try await FileProvider<YAMLSnapshot>(filePath: .init(configFile)))
                }
            } catch {
                throw ServerStartupError("cannot read the config file \(configFile): \(error)")
            }
        }
        return ServerSettings(reader: ConfigReader(providers: providers))
    }

    /// The application: routes, middleware (request log → JSON errors → upload limits →
    /// static gallery → 405 for known paths), the connection limits, and the services that
    /// run beside the HTTP server (job drain at shutdown, gallery pre-rendering).
    public static func application(
        service: ConvLensService, logger: Logger,
        registered: (@Sendable ([String]) -> Void)? = nil,
        onRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    )
        -> some ApplicationProtocol
    {
        let settings = service.settings
        let metrics = service.metrics
        service.cache.onCorrupt { metrics.cacheCorrupt.increment() }
        metrics.cacheDiskEvictions.increment(by: Int64(service.cache.stats.diskEvictions))
        service.cache.onDiskEviction { metrics.cacheDiskEvictions.increment() }
        if service.cache.startupDiskProblem != nil { metrics.cacheDiskFailures.increment() }
        service.cache.onDiskFailure { error, firstOfRun in
            metrics.cacheDiskFailures.increment()
            if firstOfRun { logger.warning("the result cache cannot write to disk (\(error)); results are kept in memory only") }
        }
        let router = Router(context: ServiceRequestContext.self)
        let routeTable = RouteTable()
        router.add(middleware: RequestLogMiddleware(metrics: service.metrics))
        router.add(middleware: JSONErrorMiddleware())
        router.add(middleware: UploadLimitsMiddleware(limits: UploadLimits(maxFormParts: settings.maxFormParts)))
        router.add(middleware: StaticFileMiddleware(directory: settings.publicDir))
        router.add(middleware: MethodNotAllowedMiddleware(routes: routeTable))
        let maxConnections = connectionLimit(configured: settings.maxConnections, logger: logger)
        let connections = Connections(
            max: maxConnections, maxPerClient: min(settings.maxConnectionsPerClient, maxConnections),
            trustedProxies: (try? TrustedProxies(settings.trustedProxies)) ?? .none, metrics: service.metrics)
        let endpoints = Routes(service: service, connections: connections).register(on: router)
        routeTable.set(endpoints.map { ($0.method, $0.path) })
        registered?(endpoints.map { "\($0.method) \($0.path)" })
        var configuration = ApplicationConfiguration(
            address: .hostname(settings.host, port: settings.port),
            serverName: "ConvLens")
        configuration.backlog = 256
        let idle = TimeAmount.nanoseconds(Int64(settings.idleTimeoutSeconds * 1e9))
        let bodyTimeout = settings.bodyTimeoutSeconds
        // Hummingbird's `.http1` with two additions at its child-channel setup: the
        // connection limits (counted as each connection is set up; one over a limit gets a
        // handler in front of the HTTP ones that answers 503 without parsing anything; one
        // within them a handler that notes when its client hangs up) and a
        // per-request body deadline (a handler after the HTTP decoder, so it sees request
        // heads and ends).
        let server = HTTPServerBuilder { responder in
            LimitedHTTP1Channel(
                http1: HTTP1Channel(
                    responder: responder,
                    configuration: .init(
                        additionalChannelHandlers: [BodyDeadlineHandler(seconds: bodyTimeout), ParseErrorBodyHandler()],
                        idleTimeout: idle)),
                connections: connections)
        }
        return Application(
            responder: HeadResponder(base: router.buildResponder(), routes: routeTable),
            server: server,
            configuration: configuration,
            onServerRunning: { channel in
                await AcceptErrorHandler.install(on: channel, logger: logger)
                await onRunning(channel.localAddress?.port ?? 0)
            },
            logger: logger)
    }
}

extension ConvLensServer {
    /// Descriptors kept free for everything but client connections: the event loops, the
    /// model and cache files, the log, and the runtime's own reads of /proc.
    static let reservedDescriptors = 64

    /// `server.max_connections`, lowered if needed to fit under the open-file limit (whose
    /// soft value is first raised to the hard one). Running out of descriptors is worse
    /// than refusing connections: accept() fails with EMFILE, and libdispatch's thread
    /// pool, which reads /proc/self/task/…/stat to see whether its workers are blocked,
    /// stops the process with SIGILL when that open() fails — seen under load in
    /// DescriptorExhaustionTests before this limit existed.
    static func connectionLimit(configured: Int, logger: Logger) -> Int {
        var limits = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits) == 0 else { return configured }
        if limits.rlim_cur < limits.rlim_max {
            var raised = limits
            raised.rlim_cur = limits.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limits = raised }
        }
        guard limits.rlim_cur != rlim_t.max else { return configured }  // RLIM_INFINITY
        let files = Int(clamping: limits.rlim_cur)
        let room = max(1, files - reservedDescriptors)
        guard configured > room else { return configured }
        logger.warning(
            "server.max_connections \(configured) lowered to \(room): the open-file limit (ulimit -n) is \(files) and \(reservedDescriptors) descriptors stay free for the server itself"
        )
        return room
    }

    /// Runs the server until SIGTERM/SIGINT, then shuts down in this order: readiness
    /// goes 503 and the queue stops taking jobs (queued ones are recorded as cancelled);
    /// running jobs get `jobs.shutdown_grace_seconds` before they are cancelled at their
    /// next step, and all that time the listener stays open — `/readyz` answers 503 and
    /// `/healthz` 200 — so a load balancer takes the instance out before it goes; then the
    /// HTTP server stops accepting and finishes the requests in flight, and the compute
    /// threads stop. Finished results are already on disk: the cache directory is its own
    /// index, nothing is left to flush.
    public static func run(
        service: ConvLensService, logger: Logger,
        onRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) async throws {
        var configuration = ServiceGroupConfiguration(
            services: services(service: service, logger: logger, onRunning: onRunning).map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // A backstop under any load: past the grace and a few seconds, what is still
        // running (a request the compute threads could not stop) is cancelled.
        configuration.maximumGracefulShutdownDuration = .milliseconds(Int64((service.settings.shutdownGraceSeconds + 4) * 1000))
        let group = ServiceGroup(configuration: configuration)
        do { try await group.run() } catch {
            // A failure before any shutdown (the port is taken) ends the process with it;
            // one after is the backstop cancelling what was left.
            guard service.isShuttingDown else {
                await service.drain()
                throw error
            }
            logger.debug("services ended during the shutdown: \(error)")
        }
        await service.drain()
        logger.info("stopped; results are on disk at \(service.cache.directory?.path ?? "(memory only)")")
    }

    /// The services `run` starts, in order: the HTTP application, then the drain. A service
    /// group shuts its services down in reverse order, each after the one before has
    /// returned: the drain goes first and returns only when the running jobs have finished
    /// or been cancelled at the grace period's end, so the HTTP server keeps its listener
    /// (and readiness 503) that long; its own wait for in-flight requests (an event stream
    /// follows a job) is then short. `triggerGracefulShutdown()` on the group is what
    /// SIGTERM does.
    public static func services(
        service: ConvLensService, logger: Logger,
        onRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) -> [any Service] {
        [application(service: service, logger: logger, onRunning: onRunning), ShutdownService(service: service, logger: logger)]
    }
}

/// Runs beside the HTTP server: at start it may queue the gallery pre-rendering; on
/// SIGTERM/SIGINT it runs the drain to its end and returns, so the HTTP server shuts down next.
struct ShutdownService: Service {
    let service: ConvLensService
    let logger: Logger

    func run() async throws {
        if service.settings.prerenderGallery {
            let n = await service.prerenderGallery(logger: logger)
            logger.info("gallery: queued \(n) filter grid(s) at bulk priority")
        }
        SecondSignal.install(service: service, logger: logger)
        // Cancelled instead: another service failed (the port is taken), and `run` reports it.
        do { try await gracefulShutdown() } catch { return }
        let counts = (try? await service.jobs.counts()) ?? JobCounts(queued: 0, running: 0)
        logger.info(
            "shutting down: \(counts.running) running and \(counts.queued) queued job(s); running jobs get up to \(service.settings.shutdownGraceSeconds) s; /readyz answers 503 meanwhile"
        )
        await service.drain()
        logger.info("drained; closing the listener")
    }
}

/// After the first SIGTERM/SIGINT (which ServiceLifecycle turns into the graceful
/// shutdown), a second one ends the process at once: the jobs this process runs for the
/// cluster are handed back (for at most two seconds), then it exits with status 1, without
/// waiting for the grace period — and without running exit handlers and static
/// destructors under compute threads that may still be in oneDNN.
enum SecondSignal {
    /// Counts the signals from start-up for the rest of the process's life.
    static func install(service: ConvLensService, logger: Logger) {
        let queue = DispatchQueue(label: "convlens-second-signal")
        let sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
        for source in sources {
            source.setEventHandler {
                // The handlers run on one serial queue.
                received += 1
                guard received >= 2 else { return }
                logger.warning("second signal: exiting now, without the rest of the grace period")
                let handedBack = DispatchSemaphore(value: 0)
                Task {
                    await service.releaseClusterJobs()
                    handedBack.signal()
                }
                _ = handedBack.wait(timeout: .now() + 2)
                fflush(nil)  // every output stream: the log lines above reach the terminal
                _exit(1)
            }
            source.resume()
        }
        watching = sources
    }

    // Set once, at start-up; kept so the sources live as long as the process.
    nonisolated(unsafe) private static var watching: [any DispatchSourceSignal] = []
    // Only touched on the sources' serial queue.
    nonisolated(unsafe) private static var received = 0
}

// MARK: - Connection limits

/// Hummingbird's HTTP/1 child channel behind a connection limit. A connection over the
/// limit gets a fixed 503 and is closed before any HTTP handler exists, so refusing costs
/// one write and no request parsing, and the process keeps its file descriptors for the
/// connections it serves. (Hummingbird's own `availableConnectionsDelegate` stops
/// accepting instead, which leaves the extra clients waiting in the backlog.)
///
/// accept() failing for want of descriptors (EMFILE/ENFILE) does not stop the accept
/// loop: NIO's server bootstrap puts an `AcceptBackoffHandler` (not forwarding I/O errors)
/// in front of the listener, which pauses accepting for a second. The limit is kept below
/// `ulimit -n` (`ConvLensServer.connectionLimit`) so the process does not get there.
struct LimitedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel
    let connections: Connections

    static func refusal(_ detail: String) -> ByteBuffer {
        let body = #"{"detail":"\#(detail)","error":"too_many_connections"}"# + "\n"
        return ByteBuffer(
            string: "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
                + "Content-Length: \(body.utf8.count)\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body)
    }
    static let refusals: [Connections.Refusal: ByteBuffer] = [
        .tooMany: refusal("the server has too many open connections (server.max_connections); try again shortly"),
        .tooManyFromClient: refusal(
            "your address has too many open connections (server.max_connections_per_client); close idle ones or try again shortly"),
    ]

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let connection: Connections.Connection
        switch connections.open(channel) {
        case .failure(let refused):
            connections.metrics.connectionsRefused.increment()
            logger.debug("refused a connection: \(refused.kind)")
            // The setup must succeed: NIO registers an accepted channel only after it, and a
            // failed setup would leave the socket open and unanswered. A handler in front of
            // the HTTP ones answers the 503 and closes as soon as the channel is active.
            return http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
                try channel.pipeline.syncOperations.addHandler(RefuseHandler(Self.refusals[refused.kind]!), position: .first)
                return value
            }
        case .success(let opened):
            connection = opened
        }
        let connections = self.connections
        channel.closeFuture.whenComplete { _ in connections.closed(channel) }
        return http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try channel.pipeline.syncOperations.addHandler(HangUpHandler(connection), position: .first)
            return value
        }
    }

    /// Writes the fixed 503 straight to the socket, closes, and drops whatever the client sent.
    final class RefuseHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var refused = false
        private let answer: ByteBuffer
        init(_ answer: ByteBuffer) { self.answer = answer }

        func handlerAdded(context: ChannelHandlerContext) {
            if context.channel.isActive { refuse(context) }
        }

        func channelActive(context: ChannelHandlerContext) {
            refuse(context)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

        private func refuse(_ context: ChannelHandlerContext) {
            guard !refused else { return }
            refused = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(answer)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}

/// Keeps the accept loop alive. NIO's `AcceptHandler` reports a connection it accepted
/// but could not set up (its socket options failing, say, on a connection already reset,
/// or while descriptors run out) by firing the error down the listener's pipeline; the next
/// handler is the async channel Hummingbird reads connections from, which ends its stream
/// on any error, and with it the server, and with the server the process. NIO's own
/// `AcceptBackoffHandler` sits before `AcceptHandler`, so it never sees these. This handler
/// goes right after `AcceptHandler` and logs such errors instead of passing them on; the
/// failed connection is already closed, and a listener that really breaks still ends the
/// stream by closing.
final class AcceptErrorHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.warning("a connection could not be accepted: \(error)")
    }

    static func install(on listener: any Channel, logger: Logger) async {
        do {
            try await listener.eventLoop.submit {
                let pipeline = listener.pipeline.syncOperations
                let accept = try pipeline.context(name: "AcceptHandler")
                try pipeline.addHandler(AcceptErrorHandler(logger: logger), position: .after(accept.handler))
            }.get()
        } catch {
            logger.warning("could not guard the accept loop (\(error)); an accept error may stop the server")
        }
    }
}

/// The request body took longer than `server.body_timeout_seconds`.
struct BodyTimeout: Error, CustomStringConvertible {
    let seconds: Double
    var description: String {
        "the request body did not arrive within \(seconds) s (server.body_timeout_seconds)"
    }
}

/// A deadline from a request's head to the end of its body. A client trickling a body
/// keeps the idle timeout from firing; this bounds the whole body instead. When it
/// passes, the error goes down the pipeline: the request's body stream fails with
/// `BodyTimeout` (the route answers 408) and the connection closes after the response.
final class BodyDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let seconds: Double
    private var timer: Scheduled<Void>?

    init(seconds: Double) { self.seconds = seconds }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            timer?.cancel()
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
                bound.value.handler.expire(context: bound.value.context)
            }
        case .body:
            break
        case .end:
            timer?.cancel()
            timer = nil
        }
        context.fireChannelRead(data)
    }

    private func expire(context: ChannelHandlerContext) {
        timer = nil
        context.fireErrorCaught(BodyTimeout(seconds: seconds))
        // If nothing reads the failed stream (the request is stuck elsewhere), the
        // connection still goes: no client keeps a socket by never finishing its body.
        context.eventLoop.scheduleTask(in: .seconds(5)) { [channel = context.channel] in channel.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}

/// Sets the upload limits for the routes below it.
struct UploadLimitsMiddleware<Context: RequestContext>: RouterMiddleware {
    let limits: UploadLimits

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try await UploadLimits.$current.withValue(limits) { try await next(request, context) }
    }
}

extension ConvLensServer {
    /// Runs a worker (no HTTP server) until SIGTERM/SIGINT, then drains: stop claiming,
    /// let running jobs finish within the grace period, hand the rest back to the queue.
    public static func runWorker(service: ConvLensService, logger: Logger) async throws {
        let group = ServiceGroup(
            services: [WorkerShutdown(service: service, logger: logger)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        await service.drain()
        logger.info("worker stopped")
    }
}

/// Waits for SIGTERM/SIGINT, then starts the drain.
struct WorkerShutdown: Service {
    let service: ConvLensService
    let logger: Logger

    func run() async throws {
        SecondSignal.install(service: service, logger: logger)
        do { try await gracefulShutdown() } catch { return }
        logger.info("worker shutting down: running jobs get up to \(service.settings.shutdownGraceSeconds) s, then go back to the queue")
        service.beginDrain()
    }
}
