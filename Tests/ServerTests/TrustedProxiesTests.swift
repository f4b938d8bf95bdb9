import Server
import Testing

@Suite struct TrustedProxiesTests {
    @Test func addressesAndNetworksOfBothFamiliesMatch() throws {
        let proxies = try TrustedProxies(["127.0.0.1", "10.89.0.0/16", "192.168.1.128/25", "fd00::/8", "::1"])
        for inside in ["127.0.0.1", "10.89.0.1", "10.89.255.254", "192.168.1.200", "fd12:3456::1", "::1"] {
            #expect(proxies.contains(inside), "\(inside)")
        }
        for outside in ["127.0.0.2", "10.90.0.1", "192.168.1.127", "fe80::1", "::2", "not an address", ""] {
            #expect(!proxies.contains(outside), "\(outside)")
        }
        #expect(try TrustedProxies(["0.0.0.0/0"]).contains("203.0.113.9"))
        #expect(!TrustedProxies.none.contains("127.0.0.1"))
    }

    @Test(arguments: ["10.0.0.0/33", "10.0.0.0/", "nginx", "10.0.0/8", "::1/129", "1.2.3.4/8/1", "/8"])
    func anythingElseIsRefusedNamingTheEntry(_ entry: String) {
        #expect {
            try TrustedProxies([entry])
        } throws: { ($0 as? TrustedProxies.Invalid)?.entry == entry }
    }
}
