import COpenSSL
import Foundation

/// SHA-256 through OpenSSL's EVP interface: content addresses of the model file,
/// of uploaded images (ETags) and of cached results.
public struct SHA256Digest: ~Copyable {
    private let context: OpaquePointer

    public init() {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    public mutating func update(_ data: some DataProtocol) {
        for region in data.regions {
            region.withUnsafeBytes { raw in
                _ = EVP_DigestUpdate(context, raw.baseAddress, raw.count)
            }
        }
    }

    public mutating func update(_ text: String) { update(Data(text.utf8)) }

    /// The digest as 64 lowercase hex digits; the digest cannot be used afterwards.
    public consuming func finalizeHex() -> String {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &out, &length)
        EVP_MD_CTX_free(context)
        return out.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
    }

    public static func hex(_ parts: [any DataProtocol]) -> String {
        var d = SHA256Digest()
        for p in parts { d.update(p) }
        return d.finalizeHex()
    }

    /// Hash of a file read in 1 MiB pieces.
    public static func hexOfFile(at url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var d = SHA256Digest()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { d.update(chunk) }
        return d.finalizeHex()
    }
}
