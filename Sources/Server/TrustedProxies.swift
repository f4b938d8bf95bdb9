#if canImport(Glibc)
    import Glibc
#endif

/// The reverse proxies whose `X-Forwarded-For` is believed: addresses (`127.0.0.1`, `::1`)
/// or networks (`10.89.0.0/16`, `fd00::/8`) — a proxy's address in a container network is
/// only known by its network.
public struct TrustedProxies: Sendable {
    private struct Network: Sendable {
        var bytes: [UInt8]
        var prefix: Int
    }
    private let networks: [Network]

    /// No proxy is trusted: every client is its socket's peer.
    public static let none = TrustedProxies(networks: [])
    private init(networks: [Network]) { self.networks = networks }

    /// Parses `entries`; throws the first one that is neither an address nor a network.
    public init(_ entries: [String]) throws {
        networks = try entries.map { entry in
            let parts = entry.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let bytes = Self.bytes(String(parts[0])) else { throw Invalid(entry: entry) }
            let bits = bytes.count * 8
            var prefix = bits
            if parts.count == 2 {
                guard let p = Int(parts[1]), (0...bits).contains(p) else { throw Invalid(entry: entry) }
                prefix = p
            }
            return Network(bytes: bytes, prefix: prefix)
        }
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let entry: String
        public var description: String { "'\(entry)' is neither an IP address nor a network (address/prefix)" }
    }

    public var isEmpty: Bool { networks.isEmpty }

    /// Whether `address` (as the socket reports it) is one of the proxies.
    public func contains(_ address: String) -> Bool {
        guard !networks.isEmpty, let bytes = Self.bytes(address) else { return false }
        return networks.contains { n in
            guard n.bytes.count == bytes.count else { return false }
            let whole = n.prefix / 8
            if bytes[..<whole] != n.bytes[..<whole] { return false }
            let rest = n.prefix % 8
            guard rest > 0 else { return true }
            let mask = UInt8(0xFF) << (8 - rest)
            return bytes[whole] & mask == n.bytes[whole] & mask
        }
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 address.
    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
