import Engine

/// Memory a request is expected to hold at its peak, estimated from the layer graph and
/// the request's numbers before anything runs: a part every image of a batch needs
/// (`perImage`) and a part the request holds once (`shared`).
public struct MemoryEstimate: Sendable, Equatable {
    public var perImage: Int
    public var shared: Int
    public var images: Int

    /// The whole estimate; saturates instead of overflowing (a request's numbers are
    /// range-checked before this, so it never does in practice).
    public var bytes: Int {
        let (product, overflow) = perImage.multipliedReportingOverflow(by: images)
        let (sum, overflowSum) = product.addingReportingOverflow(shared)
        return overflow || overflowSum ? .max : sum
    }

    /// Images of this kind that fit in `limit` bytes.
    public func imagesFitting(_ limit: Int) -> Int {
        limit <= shared || perImage <= 0 ? 0 : (limit - shared) / perImage
    }

    /// `bytes` for people: "3.7 GiB", "512 MiB".
    public static func describe(_ bytes: Int) -> String {
        let mib = Double(bytes) / 1_048_576
        if mib >= 1024 { return "\((mib / 1024 * 10).rounded() / 10) GiB" }
        return "\(Int(mib.rounded(.up))) MiB"
    }
}

extension ModelSession {
    /// The peak memory of a canonical filter request: per image, the ascent step's
    /// outputs and gradients at the image's size (`Network.ascentFootprint`), the
    /// method's own state, and the result (float images, picture, encoded body); once,
    /// lucid's Fourier matrices. Throws as `canonical` for a size the layer cannot take.
    public func memoryEstimate(_ r: FilterRequest) throws -> MemoryEstimate {
        let (h, w) = filterImageSize(r)
        let network = try filterNetwork(height: h, width: w)
        let target = try filterTarget(layer: r.layer, method: r.method)
        let footprint = try network.ascentFootprint(layerNode: target.node, height: h, width: w)
        let float = MemoryLayout<Float>.size
        let channels = max(network.inputShape[2], 1)
        let pixels = h * w
        // One float image at the model's input (the images the ascent moves, its gradient).
        let inputImage = float * pixels * channels
        let rgbImage = float * pixels * 3
        let state: Int
        let shared: Int
        switch r.method {
        case .lucid, .auto:
            let fourier = LucidFourierImage.coefficientCount(height: h, width: w)
            // Coefficients with Adam's two moments, the RGB image, the warp's four taps and
            // weights per pixel, the model input made from it and its gradient.
            state = 3 * float * fourier + rgbImage + 8 * float * pixels + 2 * inputImage
            // The inverse transform's matrices, and one image's backward buffers at a time.
            shared = float * LucidDFT2D.matrixElements(height: h, width: w) + 6 * rgbImage
        case .book:
            // The start batch, the moved images, and the gradient.
            state = 3 * inputImage
            shared = 0
        }
        let picture = pixels * channels
        let body: Int
        switch r.format {
        case .png: body = 2 * picture
        case .npy: body = inputImage
        case .json: body = inputImage + Self.jsonBytesPerFloat * pixels * channels
        }
        return MemoryEstimate(
            perImage: footprint.bytesPerSample + state + inputImage + 2 * picture + body, shared: shared, images: r.count ?? 1)
    }

    /// What `JSONEncoder` holds per float of a `TensorDocument` while writing it: the
    /// encoder's value tree and the text.
    static let jsonBytesPerFloat = 48

    /// Refuses (`RequestError.tooCostly`) a canonical filter request whose memory estimate
    /// exceeds `limits.maxRequestBytes`, saying how many filters fit at its size and
    /// which size fits its count.
    public func checkCost(_ r: FilterRequest, limits: RenderLimits) throws {
        let estimate = try memoryEstimate(r)
        guard estimate.bytes > limits.maxRequestBytes else { return }
        let limit = limits.maxRequestBytes
        let (h, w) = filterImageSize(r)
        let count = r.count ?? 1
        var lower: [String] = []
        let fitting = estimate.imagesFitting(limit)
        if count > 1 {
            lower.append(fitting > 0 ? "count (\(fitting) filters fit at this size)" : "count")
        }
        if let size = largestFittingSize(r, limit: limit) {
            lower.append("size (size=\(size) fits \(count == 1 ? "one filter" : "\(count) filters"))")
        } else if count == 1 || fitting == 0 {
            lower.append("size (no size fits: choose an earlier layer)")
        }
        let what = count == 1 ? "one \(r.method.rawValue) filter" : "a \(r.method.rawValue) grid of \(count) filters"
        throw RequestError.tooCostly(
            "\(what) of '\(r.layer)' at \(h)×\(w) needs about \(MemoryEstimate.describe(estimate.bytes)) of memory; this server allows \(MemoryEstimate.describe(limit)) per request (compute.max_request_bytes): lower "
                + lower.joined(separator: " or "))
    }

    /// The largest size below the request's whose estimate fits `limit`, or nil.
    private func largestFittingSize(_ r: FilterRequest, limit: Int) -> Int? {
        func estimate(_ size: Int) -> Int? {
            var smaller = r
            smaller.size = size
            return try? memoryEstimate(smaller).bytes
        }
        let sizes = FilterRequest.sizeRange.lowerBound...max(FilterRequest.sizeRange.lowerBound, (r.size ?? 0) - 1)
        // The smallest sizes can be too small for the layer's path (an output would be
        // empty): start from the first that computes.
        guard let first = sizes.first(where: { estimate($0) != nil }), let least = estimate(first), least <= limit else {
            return nil
        }
        // Above it the estimate grows with the size: bisect for the last size that fits.
        var (low, high) = (first, sizes.upperBound)
        while low < high {
            let mid = (low + high + 1) / 2
            if let bytes = estimate(mid), bytes <= limit { low = mid } else { high = mid - 1 }
        }
        return low
    }
}
