import Hummingbird
import NIOCore
import Synchronization

/// The open client connections: how many in all and per client address (each capped, so
/// one client's idle or slow sockets cannot take every slot), and for each one whether its
/// client has hung up — which the computation it asked for checks at its next boundary.
final class Connections: Sendable {
    /// One open connection.
    final class Connection: Sendable {
        /// The peer's address (no port): a client, or a trusted proxy.
        let peer: String
        private let closedByClient = Atomic<Bool>(false)
        init(peer: String) { self.peer = peer }

        /// The client closed its side (or the connection broke): nobody will read an answer.
        var hungUp: Bool { closedByClient.load(ordering: .relaxed) }
        func hangUp() { closedByClient.store(true, ordering: .relaxed) }
    }

    enum Refusal { case tooMany, tooManyFromClient }

    let max: Int
    let maxPerClient: Int
    let trustedProxies: TrustedProxies
    let metrics: ServerMetrics
    private struct State {
        var total = 0
        var perPeer: [String: Int] = [:]
        var open: [ObjectIdentifier: Connection] = [:]
    }
    private let state = Mutex(State())

    init(max: Int, maxPerClient: Int, trustedProxies: TrustedProxies, metrics: ServerMetrics) {
        self.max = max
        self.maxPerClient = Swift.min(maxPerClient, max)
        self.trustedProxies = trustedProxies
        self.metrics = metrics
    }

    /// Counts a new connection from `channel`'s peer, or says why it is refused. A trusted
    /// proxy carries many clients: only the global limit applies to it.
    func open(_ channel: any Channel) -> Result<Connection, RefusalError> {
        let address = Self.address(channel.remoteAddress)
        let capped = !trustedProxies.contains(address)
        let peer = Self.client(address)
        return state.withLock { s in
            if s.total >= max { return .failure(RefusalError(kind: .tooMany)) }
            if capped, s.perPeer[peer, default: 0] >= maxPerClient { return .failure(RefusalError(kind: .tooManyFromClient)) }
            s.total += 1
            s.perPeer[peer, default: 0] += 1
            let connection = Connection(peer: peer)
            s.open[ObjectIdentifier(channel)] = connection
            return .success(connection)
        }
    }

    struct RefusalError: Error { let kind: Refusal }

    func closed(_ channel: any Channel) {
        state.withLock { s in
            guard let c = s.open.removeValue(forKey: ObjectIdentifier(channel)) else { return }
            s.total -= 1
            let left = s.perPeer[c.peer, default: 1] - 1
            if left > 0 { s.perPeer[c.peer] = left } else { s.perPeer.removeValue(forKey: c.peer) }
        }
    }

    /// The counted connection of `channel` (nil for one not made by the server: a test's).
    func connection(of channel: any Channel) -> Connection? {
        state.withLock { $0.open[ObjectIdentifier(channel)] }
    }

    /// Open connections in all.
    var count: Int { state.withLock { $0.total } }

    /// Who a request is from: the peer, or, when the peer is a trusted proxy, the last
    /// address of `X-Forwarded-For` that is not one (the proxies append to it; what a
    /// client wrote before them is not believed). That entry must be an IP address, else
    /// the proxy itself is the client.
    func client(of request: Request, channel: any Channel) -> String {
        let peer = Self.address(channel.remoteAddress)
        guard trustedProxies.contains(peer) else { return Self.client(peer) }
        let forwarded = request.headers[values: .init("X-Forwarded-For")!].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard let entry = forwarded.last(where: { !trustedProxies.contains($0) }), TrustedProxies.bytes(entry) != nil else {
            return Self.client(peer)
        }
        return Self.client(entry)
    }

    /// The client an address stands for: an IPv4 address itself; an IPv6 address its /64,
    /// the block one subscriber gets, so rotating through it makes no new clients.
    static func client(_ address: String) -> String {
        guard let bytes = TrustedProxies.bytes(address), bytes.count == 16 else { return address }
        if bytes[..<12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] {
            return bytes[12...].map(String.init).joined(separator: ".")  // IPv4-mapped
        }
        let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return groups.joined(separator: ":") + "::/64"
    }

    static func address(_ socket: SocketAddress?) -> String {
        guard let socket else { return "local" }
        return socket.ipAddress ?? socket.pathname ?? "local"
    }
}

/// Marks its connection hung up when the client closes its side or the connection breaks;
/// the first handler of the pipeline, passing everything on.
final class HangUpHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let connection: Connections.Connection
    init(_ connection: Connections.Connection) { self.connection = connection }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { connection.hangUp() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.hangUp()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }
}

/// The context of every route: Hummingbird's, and the connection the request came on
/// (who asked, and whether they are still there).
public struct ServiceRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
