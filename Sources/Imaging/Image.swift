import Foundation

/// An 8-bit image: `height` rows of `width` pixels, `channels` interleaved
/// samples per pixel (1 = grey, 3 = RGB, 4 = RGBA), row-major, no padding.
public struct Image: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public var pixels: [UInt8]

    /// Wraps existing samples. Throws `invalidArgument` if the sizes don't match.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        guard width >= 0, height >= 0, [1, 3, 4].contains(channels) else {
            throw ImagingError.invalidArgument("image \(width)x\(height) with \(channels) channels (1, 3 or 4 allowed)")
        }
        guard pixels.count == width * height * channels else {
            throw ImagingError.invalidArgument("\(pixels.count) samples for a \(width)x\(height)x\(channels) image")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// An image filled with one colour (`fill` has 1, `channels` entries, or is repeated).
    public init(width: Int, height: Int, channels: Int, fill: [UInt8] = [0]) {
        precondition(width >= 0 && height >= 0 && [1, 3, 4].contains(channels))
        precondition(fill.count == 1 || fill.count == channels)
        self.width = width
        self.height = height
        self.channels = channels
        if fill.count == 1 {
            pixels = [UInt8](repeating: fill[0], count: width * height * channels)
        } else {
            var p = [UInt8]()
            p.reserveCapacity(width * height * channels)
            for _ in 0..<(width * height) { p.append(contentsOf: fill) }
            pixels = p
        }
    }

    init(unchecked width: Int, _ height: Int, _ channels: Int, _ pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// Sample `c` of pixel (x, y).
    @inlinable public subscript(x: Int, y: Int, c: Int) -> UInt8 {
        get { pixels[(y * width + x) * channels + c] }
        set { pixels[(y * width + x) * channels + c] = newValue }
    }

    /// The pixel at (x, y) as an array of `channels` samples.
    public func pixel(x: Int, y: Int) -> [UInt8] {
        let o = (y * width + x) * channels
        return Array(pixels[o..<(o + channels)])
    }
}

/// A float image, HWC (`height` × `width` × `channels`), the layout models take as input.
public struct FloatImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public var values: [Float]

    public init(width: Int, height: Int, channels: Int, values: [Float]) throws {
        guard width >= 0, height >= 0, channels > 0, values.count == width * height * channels else {
            throw ImagingError.invalidArgument("\(values.count) values for a \(width)x\(height)x\(channels) float image")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.values = values
    }

    init(unchecked width: Int, _ height: Int, _ channels: Int, _ values: [Float]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.values = values
    }

    @inlinable public subscript(x: Int, y: Int, c: Int) -> Float {
        get { values[(y * width + x) * channels + c] }
        set { values[(y * width + x) * channels + c] = newValue }
    }

    public enum Quantization: Sendable {
        /// `np.clip(x, 0, 255).astype("uint8")`: clip, then truncate toward zero (the book's deprocess).
        case clipTruncate
        /// clip, then round half to even (OpenCV's `saturate_cast`).
        case clipRound
    }

    /// An 8-bit image from values in 0…255 (1, 3 or 4 channels). NaN → 0.
    public func toImage(_ q: Quantization = .clipTruncate) throws -> Image {
        guard [1, 3, 4].contains(channels) else { throw ImagingError.invalidArgument("\(channels) channels") }
        let px = values.map { v -> UInt8 in
            if v.isNaN { return 0 }
            let c = min(max(v, 0), 255)
            return UInt8(q == .clipTruncate ? c.rounded(.towardZero) : c.rounded(.toNearestOrEven))
        }
        return Image(unchecked: width, height, channels, px)
    }
}

/// Everything that can go wrong in Imaging.
public enum ImagingError: Error, Equatable, CustomStringConvertible {
    /// The bytes are not a PNG or JPEG (detected by magic bytes).
    case notAnImage(String)
    /// A PNG/JPEG variant or an argument combination we do not handle.
    case unsupported(String)
    /// The file is damaged (libjpeg/libpng error, or libjpeg warnings such as a truncated file).
    case corrupt(String)
    /// The header declares more pixels than the caller allows; nothing was allocated.
    case tooManyPixels(width: Int, height: Int, limit: Int)
    case outOfMemory
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .notAnImage(let d): return "not a PNG or JPEG image: \(d)"
        case .unsupported(let d): return "unsupported image: \(d)"
        case .corrupt(let d): return "corrupt image data: \(d)"
        case .tooManyPixels(let w, let h, let limit):
            return "image is \(w)x\(h) = \(w * h) pixels, more than the limit of \(limit)"
        case .outOfMemory: return "out of memory while decoding"
        case .invalidArgument(let d): return "invalid argument: \(d)"
        }
    }
}
