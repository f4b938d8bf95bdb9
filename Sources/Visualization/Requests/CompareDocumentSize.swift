/// How large a comparison's document can get, known before anything runs: the overlays
/// dominate it, and each is at most `overlay_size` on its longer side, so the bound follows
/// from the request's numbers alone (the photo is scaled down to fit, never up).
extension CompareRequest {
    /// Bytes of a PNG of `pixels` RGB pixels at most: its raw rows (a filter byte each) with
    /// zlib's worst case for incompressible data (`compressBound`: about 0.03 % more) and the
    /// chunks around them, rounded up generously.
    static func pngBytesBound(width: Int, height: Int) -> Int {
        let raw = height * (3 * width + 1)
        return raw + raw / 1000 + 1024
    }

    /// Bytes of one method's row besides its overlay: names, scores, sizes and timings.
    static let rowBytes = 1024
    /// Bytes of the document besides its rows: class, label, metrics, the best methods.
    static let documentBytes = 4096

    /// The document's size at most for `methods` methods at `overlaySize` (each overlay
    /// base64-encoded: 4 bytes for every 3).
    static func documentBytesBound(methods: Int, overlaySize: Int) -> Int {
        let png = pngBytesBound(width: overlaySize, height: overlaySize)
        return documentBytes + methods * (rowBytes + 4 * ((png + 2) / 3))
    }

    /// This comparison's document size at most (canonical requests only).
    public var documentBytesBound: Int {
        Self.documentBytesBound(methods: methods.count, overlaySize: overlaySize)
    }

    /// Refuses (`RequestError.tooCostly`) a comparison whose document could exceed
    /// `limits.maxDocumentBytes`, saying which overlay size fits its methods and how many
    /// methods fit its overlay size.
    func checkDocumentSize(limits: RenderLimits) throws {
        let estimate = documentBytesBound
        let limit = limits.maxDocumentBytes
        guard estimate > limit else { return }
        var lower: [String] = []
        let sizes = Self.overlaySizeRange
        if let fits = sizes.reversed().first(where: {
            $0 < overlaySize && Self.documentBytesBound(methods: methods.count, overlaySize: $0) <= limit
        }) {
            lower.append("overlay_size (overlay_size=\(fits) fits \(methods.count) methods)")
        }
        let methodsFitting = (0..<methods.count).last { Self.documentBytesBound(methods: $0, overlaySize: overlaySize) <= limit } ?? 0
        if methodsFitting > 0 {
            lower.append("the number of methods (\(methodsFitting) fit at overlay_size=\(overlaySize))")
        }
        if lower.isEmpty { lower.append("overlay_size and the number of methods") }
        throw RequestError.tooCostly(
            "comparing \(methods.count) methods with overlay_size=\(overlaySize) makes a document of up to \(MemoryEstimate.describe(estimate)); this server stores at most \(MemoryEstimate.describe(limit)) per result (cache.max_entry_bytes): lower "
                + lower.joined(separator: " or "))
    }
}
