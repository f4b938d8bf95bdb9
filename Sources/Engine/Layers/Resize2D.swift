/// Keras' image resizes inside a model: `Resizing`, `UpSampling2D`, `CenterCrop`
/// (and tf_keras' `RandomCrop` at inference). Each takes a window of the map —
/// all of it, a centred crop, or the map padded to the target's aspect — and
/// resamples it to the output size, each axis by a sparse linear map
/// (`AxisResampling`). Backward applies the transposed maps and puts the window's
/// gradient back in place (zero where the window was padding).
public final class Resize2D: Layer {
    /// The output size: fixed, or the input's times integer factors.
    public enum Size: Sendable, Equatable {
        case fixed(height: Int, width: Int)
        case scaled(height: Int, width: Int)
    }

    /// Which window of the input is resized.
    public enum Fit: Sendable, Equatable {
        /// The whole map, stretched (Keras' default).
        case stretch
        /// The largest centred window of the target's aspect (`crop_to_aspect_ratio`).
        case cropToAspect
        /// The map padded with `fill` to the target's aspect (`pad_to_aspect_ratio`).
        case padToAspect(fill: Float)
        /// `CenterCrop`: the centred target-size window when the map is at least that
        /// large, else the largest centred window of the target's aspect, resized bilinearly.
        case centreCrop
    }

    public let name: String
    public let kind: String
    public let size: Size
    public let fit: Fit
    public let interpolation: ResizeInterpolation
    public let antialias: Bool
    private let invalid: String?

    public init(
        name: String, kind: String, size: Size, fit: Fit = .stretch, interpolation: ResizeInterpolation = .bilinear,
        antialias: Bool = false
    ) {
        self.name = name
        self.kind = kind
        self.size = size
        self.fit = fit
        self.interpolation = interpolation
        self.antialias = antialias
        switch size {
        case .fixed(let h, let w), .scaled(let h, let w):
            invalid = h > 0 && w > 0 ? nil : "size must be positive, got \(h)x\(w)"
        }
    }

    /// Where the window sits in the input (top/left may be negative: padding) and what
    /// each axis does to it.
    struct Geometry {
        var top: Int, left: Int, height: Int, width: Int
        var fill: Float
        var outHeight: Int, outWidth: Int
        var rows: AxisResampling?
        var columns: AxisResampling?
    }

    private func geometry(height h: Int, width w: Int) throws -> Geometry {
        if let invalid { throw mismatch(invalid) }
        guard h > 0, w > 0 else { throw mismatch("input \(h)x\(w) is empty") }
        switch size {
        case .scaled(let fh, let fw):
            let oh = h.multipliedReportingOverflow(by: fh)
            let ow = w.multipliedReportingOverflow(by: fw)
            guard !oh.overflow, !ow.overflow, oh.partialValue <= 1 << 24, ow.partialValue <= 1 << 24 else {
                throw mismatch("upsampling \(h)x\(w) by \(fh)x\(fw) overflows")
            }
            var g = Geometry(top: 0, left: 0, height: h, width: w, fill: 0, outHeight: oh.partialValue, outWidth: ow.partialValue)
            if interpolation == .nearest {
                g.rows = fh == 1 ? nil : AxisResampling(repeating: h, factor: fh)
                g.columns = fw == 1 ? nil : AxisResampling(repeating: w, factor: fw)
            } else {
                g.rows = AxisResampling(input: h, output: g.outHeight, interpolation: interpolation, antialias: antialias)
                g.columns = AxisResampling(input: w, output: g.outWidth, interpolation: interpolation, antialias: antialias)
            }
            return g
        case .fixed(let th, let tw):
            var g = Geometry(top: 0, left: 0, height: h, width: w, fill: 0, outHeight: th, outWidth: tw)
            var method = interpolation
            switch fit {
            case .stretch:
                break
            case .cropToAspect:
                // TensorFlow computes the window in float32.
                let ch = max(min(h, Int(Float(w * th) / Float(tw))), 1)
                let cw = max(min(w, Int(Float(h * tw) / Float(th))), 1)
                g.top = Int(Float(h - ch) / 2)
                g.left = Int(Float(w - cw) / 2)
                (g.height, g.width) = (ch, cw)
            case .padToAspect(let fill):
                let ph = max(h, Int(Float(w * th) / Float(tw)))
                let pw = max(w, Int(Float(h * tw) / Float(th)))
                // Keras pads the same count on both sides, so an odd difference loses a row.
                let top = Int(Float(ph - h) / 2)
                let left = Int(Float(pw - w) / 2)
                (g.top, g.left, g.height, g.width, g.fill) = (-top, -left, h + 2 * top, w + 2 * left, fill)
            case .centreCrop:
                if h >= th && w >= tw {
                    (g.top, g.left, g.height, g.width) = ((h - th) / 2, (w - tw) / 2, th, tw)
                    return g
                }
                // `smart_resize`: the window in Python floats, then a bilinear resize.
                let ch = max(min(h, Int(Double(w * th) / Double(tw))), 1)
                let cw = max(min(w, Int(Double(h * tw) / Double(th))), 1)
                (g.top, g.left, g.height, g.width) = (Int(Double(h - ch) / 2), Int(Double(w - cw) / 2), ch, cw)
                method = .bilinear
            }
            g.rows = AxisResampling(input: g.height, output: th, interpolation: method, antialias: antialias)
            g.columns = AxisResampling(input: g.width, output: tw, interpolation: method, antialias: antialias)
            return g
        }
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        let s = try singleShape(inputShapes)
        try checkFeatureMapShape(s, channels: nil)
        if let invalid { throw mismatch(invalid) }
        switch size {
        case .fixed(let th, let tw):
            return [th, tw, s[2]]
        case .scaled(let fh, let fw):
            guard s[0] == -1 || s[0] <= Int.max / fh, s[1] == -1 || s[1] <= Int.max / fw else {
                throw mismatch("upsampling \(s) by \(fh)x\(fw) overflows")
            }
            return [s[0] == -1 ? -1 : s[0] * fh, s[1] == -1 ? -1 : s[1] * fw, s[2]]
        }
    }

    // MARK: forward

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        let (n, c) = (x.shape[0], x.shape[3])
        let g = try geometry(height: x.shape[1], width: x.shape[2])
        var y = window(x, g)
        if let rows = g.rows { y = rows.apply(y, outer: n, inner: g.width * c) }
        if let columns = g.columns { y = columns.apply(y, outer: n * g.outHeight, inner: c) }
        return Tensor(shape: [n, g.outHeight, g.outWidth, c], scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let x = try singleInput(inputs)
        try checkFeatureMap(x, channels: nil)
        let (n, c) = (x.shape[0], x.shape[3])
        let g = try geometry(height: x.shape[1], width: x.shape[2])
        guard outputGradient.shape == [n, g.outHeight, g.outWidth, c] else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output \([n, g.outHeight, g.outWidth, c])")
        }
        var d = outputGradient.scalars
        if let columns = g.columns { d = columns.apply(d, outer: n * g.outHeight, inner: c, transposed: true) }
        if let rows = g.rows { d = rows.apply(d, outer: n, inner: g.width * c, transposed: true) }
        return [unwindow(d, into: x.shape, g)]
    }

    /// The window `[n, height, width, c]` of `x`, `fill` outside the map.
    private func window(_ x: Tensor, _ g: Geometry) -> [Float] {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        if g.top == 0 && g.left == 0 && g.height == h && g.width == w { return x.scalars }
        var out = [Float](repeating: g.fill, count: n * g.height * g.width * c)
        let (y0, y1) = (max(0, g.top), min(h, g.top + g.height))
        let (x0, x1) = (max(0, g.left), min(w, g.left + g.width))
        guard y1 > y0, x1 > x0 else { return out }
        x.scalars.withUnsafeBufferPointer { xs in
            out.withUnsafeMutableBufferPointer { os in
                for b in 0..<n {
                    for y in y0..<y1 {
                        let src = xs.baseAddress! + ((b * h + y) * w + x0) * c
                        let dst = os.baseAddress! + ((b * g.height + y - g.top) * g.width + x0 - g.left) * c
                        dst.update(from: src, count: (x1 - x0) * c)
                    }
                }
            }
        }
        return out
    }

    /// The transpose of `window`: the window's gradient put back into a map shaped `shape`.
    private func unwindow(_ d: [Float], into shape: [Int], _ g: Geometry) -> Tensor {
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        if g.top == 0 && g.left == 0 && g.height == h && g.width == w { return Tensor(shape: shape, scalars: d) }
        var dx = [Float](repeating: 0, count: n * h * w * c)
        let (y0, y1) = (max(0, g.top), min(h, g.top + g.height))
        let (x0, x1) = (max(0, g.left), min(w, g.left + g.width))
        guard y1 > y0, x1 > x0 else { return Tensor(shape: shape, scalars: dx) }
        d.withUnsafeBufferPointer { ds in
            dx.withUnsafeMutableBufferPointer { xs in
                for b in 0..<n {
                    for y in y0..<y1 {
                        let src = ds.baseAddress! + ((b * g.height + y - g.top) * g.width + x0 - g.left) * c
                        let dst = xs.baseAddress! + ((b * h + y) * w + x0) * c
                        dst.update(from: src, count: (x1 - x0) * c)
                    }
                }
            }
        }
        return Tensor(shape: shape, scalars: dx)
    }
}
