import CImageCodecs
import Foundation

/// Container formats the decoder understands.
public enum ImageFormat: String, Sendable {
    case png, jpeg

    /// Detects the format from magic bytes (never from a file name).
    public static func detect(_ data: Data) -> ImageFormat? {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if data.count >= 8, Array(data.prefix(8)) == png { return .png }
        if data.count >= 3, Array(data.prefix(3)) == [0xFF, 0xD8, 0xFF] { return .jpeg }
        return nil
    }
}

/// The channel layout `decodeImage` returns.
public enum DecodedLayout: Sendable, Equatable {
    /// 3 channels. Grey is replicated; alpha is composited on `DecodeOptions.background`.
    case rgb
    /// 4 channels; opaque images get alpha 255.
    case rgba
    /// 1 channel: grey files as stored; colour files converted with Pillow's
    /// `convert("L")` weights (ITU-R 601-2, 19595/38470/7471 / 65536, rounded).
    /// Alpha is composited on the background first.
    case grey
}

public struct DecodeOptions: Sendable {
    /// Refuse images whose header declares more than this many pixels (width × height).
    public var maxPixels: Int
    public var layout: DecodedLayout
    /// Background for alpha compositing (RGB). Default white.
    public var background: (UInt8, UInt8, UInt8)
    /// Rotate/flip JPEGs by their EXIF orientation tag (1–8), as
    /// `PIL.ImageOps.exif_transpose` does. Keras' `load_img` does NOT do this;
    /// set false for Keras-identical pixels.
    public var applyEXIFOrientation: Bool
    /// Drop alpha instead of compositing it (for `.rgb`/`.grey`): Pillow's
    /// `convert("RGB")`/`convert("L")`, which is what `keras.utils.load_img` does.
    public var discardAlpha: Bool

    public init(
        maxPixels: Int = 50_000_000, layout: DecodedLayout = .rgb,
        background: (UInt8, UInt8, UInt8) = (255, 255, 255), applyEXIFOrientation: Bool = true,
        discardAlpha: Bool = false
    ) {
        self.maxPixels = maxPixels
        self.layout = layout
        self.background = background
        self.applyEXIFOrientation = applyEXIFOrientation
        self.discardAlpha = discardAlpha
    }

    /// What `keras.utils.load_img(path)` gives (before resizing): RGB, alpha dropped,
    /// EXIF orientation ignored.
    public static func kerasLike(maxPixels: Int = 50_000_000) -> DecodeOptions {
        DecodeOptions(maxPixels: maxPixels, layout: .rgb, applyEXIFOrientation: false, discardAlpha: true)
    }
}

/// What the decoder found besides the pixels.
public struct DecodeInfo: Sendable, Equatable {
    public var format: ImageFormat
    /// Width and height as stored in the file (before EXIF orientation).
    public var storedWidth: Int
    public var storedHeight: Int
    /// Channels as decoded by libpng/libjpeg before layout conversion: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
    public var sourceChannels: Int
    /// EXIF orientation (1 if absent or invalid). JPEG only.
    public var exifOrientation: Int
    public var isCMYK: Bool
    public var isProgressive: Bool
}

/// Decodes a PNG or JPEG. See `DecodeOptions` for the pixel limit, layout, and background.
///
/// PNG: 1/2/4/8/16-bit grey, grey+alpha, palette (with tRNS), RGB, RGBA, interlaced.
/// 16-bit samples keep their high byte, as Pillow reads them; gAMA is not applied.
/// Alpha is composited as `round((c·a + bg·(255 − a)) / 255)`.
/// JPEG: baseline, progressive, greyscale, CMYK/YCCK (Adobe-inverted when the
/// APP14 Adobe marker is present; converted to RGB as Pillow does). Any libjpeg
/// warning (e.g. a truncated file) is an error.
public func decodeImage(_ data: Data, options: DecodeOptions = DecodeOptions()) throws -> Image {
    try decodeImageWithInfo(data, options: options).image
}

/// Convenience: decode with a pixel limit and the default RGB layout on white.
public func decodeImage(_ data: Data, maxPixels: Int) throws -> Image {
    try decodeImage(data, options: DecodeOptions(maxPixels: maxPixels))
}

public func decodeImageWithInfo(_ data: Data, options: DecodeOptions = DecodeOptions()) throws -> (image: Image, info: DecodeInfo) {
    try decodeImageWithInfo(data, options: options, pngReader: .fastest)
}

/// Who reads a PNG: `fastest` — ConvLens' reader for the common 8-bit, non-interlaced
/// files without gamma or transparency chunks, libpng for the rest and for anything
/// irregular; `libpng` — libpng always (the reference the tests hold the other to).
enum PNGReader { case fastest, libpng }

/// Whether ConvLens' own PNG reader (not libpng) decodes `data` under `fastest` (within
/// `DecodeOptions`' default pixel limit).
func ownPNGReaderDecodes(_ data: Data) -> Bool {
    var result = cl_decoded()
    let limit = UInt64(DecodeOptions().maxPixels)
    data.withUnsafeBytes { raw in cl_png_decode(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, limit, &result) }
    defer { cl_codec_free(result.pixels) }
    return result.status == CL_OK && result.own_png_reader == 1
}

func decodeImageWithInfo(_ data: Data, options: DecodeOptions, pngReader: PNGReader) throws -> (image: Image, info: DecodeInfo) {
    guard let format = ImageFormat.detect(data) else {
        throw ImagingError.notAnImage(
            data.isEmpty ? "empty data" : "unknown magic bytes \(data.prefix(8).map { String(format: "%02x", $0) }.joined())")
    }
    let limit = max(0, options.maxPixels)
    var result = cl_decoded()
    data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
        let base = raw.bindMemory(to: UInt8.self).baseAddress
        switch format {
        case .png:
            switch pngReader {
            case .fastest: cl_png_decode(base, raw.count, UInt64(limit), &result)
            case .libpng: cl_png_decode_libpng(base, raw.count, UInt64(limit), &result)
            }
        case .jpeg: cl_jpeg_decode(base, raw.count, UInt64(limit), &result)
        }
    }
    defer {
        cl_codec_free(result.pixels)
        cl_codec_free(result.exif)
    }
    let message = withUnsafeBytes(of: result.message) { raw in
        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
    switch result.status {
    case CL_OK: break
    case CL_ERR_TOO_MANY_PIXELS:
        throw ImagingError.tooManyPixels(width: Int(result.width), height: Int(result.height), limit: limit)
    case CL_ERR_UNSUPPORTED: throw ImagingError.unsupported("\(format.rawValue): \(message)")
    case CL_ERR_NO_MEMORY: throw ImagingError.outOfMemory
    default:
        let warnings = result.num_warnings > 0 ? " (\(result.num_warnings) libjpeg warning(s))" : ""
        throw ImagingError.corrupt("\(format.rawValue): \(message)\(warnings)")
    }
    let w = Int(result.width)
    let h = Int(result.height)
    let c = Int(result.channels)
    let raw = Array(UnsafeBufferPointer(start: result.pixels, count: w * h * c))
    var orientation = 1
    if let exif = result.exif, result.exif_size > 0 {
        orientation = exifOrientation(tiff: Array(UnsafeBufferPointer(start: exif, count: result.exif_size))) ?? 1
    }
    var image: Image
    if options.discardAlpha && (c == 2 || c == 4) && options.layout != .rgba {
        let opaque = Image(unchecked: w, h, c == 2 ? 1 : 3, dropAlpha(raw, channels: c))
        image = convertLayout(
            opaque.pixels, width: w, height: h, channels: opaque.channels, to: options.layout, background: options.background)
    } else {
        image = convertLayout(raw, width: w, height: h, channels: c, to: options.layout, background: options.background)
    }
    if options.applyEXIFOrientation && orientation != 1 {
        image = image.oriented(exif: orientation)
    }
    let info = DecodeInfo(
        format: format, storedWidth: w, storedHeight: h, sourceChannels: c,
        exifOrientation: orientation, isCMYK: result.is_cmyk != 0,
        isProgressive: result.is_progressive != 0)
    return (image, info)
}

/// Reads the Orientation tag (0x0112) from IFD0 of an EXIF TIFF block
/// (the APP1 payload after "Exif\0\0"). Returns nil if absent, malformed or not 1–8.
public func exifOrientation(tiff b: [UInt8]) -> Int? {
    guard b.count >= 8 else { return nil }
    let little: Bool
    if b[0] == 0x49 && b[1] == 0x49 { little = true } else if b[0] == 0x4D && b[1] == 0x4D { little = false } else { return nil }
    func u16(_ o: Int) -> Int? {
        guard o >= 0, o + 2 <= b.count else { return nil }
        return little ? Int(b[o]) | Int(b[o + 1]) << 8 : Int(b[o]) << 8 | Int(b[o + 1])
    }
    func u32(_ o: Int) -> Int? {
        guard let lo = u16(little ? o : o + 2), let hi = u16(little ? o + 2 : o) else { return nil }
        return hi << 16 | lo
    }
    guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
    for i in 0..<count {
        let e = ifd + 2 + 12 * i
        guard let tag = u16(e), let type = u16(e + 2), let n = u32(e + 4) else { return nil }
        if tag == 0x0112 {
            // SHORT (3), count 1: value left-justified in the 4-byte field. Accept LONG (4) too.
            let value: Int?
            switch (type, n) {
            case (3, 1): value = u16(e + 8)
            case (4, 1): value = u32(e + 8)
            default: value = nil
            }
            if let v = value, (1...8).contains(v) { return v }
            return nil
        }
    }
    return nil
}

func dropAlpha(_ p: [UInt8], channels c: Int) -> [UInt8] {
    let n = p.count / c
    var out = [UInt8]()
    out.reserveCapacity(n * (c - 1))
    for i in 0..<n { out.append(contentsOf: p[(i * c)..<(i * c + c - 1)]) }
    return out
}

/// Pillow's `convert("L")`: (R·19595 + G·38470 + B·7471 + 0x8000) >> 16.
@inline(__always) func pilLuma(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
    let sum: Int = Int(r) * 19595 + Int(g) * 38470 + Int(b) * 7471
    return UInt8((sum + 0x8000) >> 16)
}

/// round((c·a + bg·(255 − a)) / 255) in integers.
@inline(__always) func composite(_ c: UInt8, _ a: UInt8, _ bg: UInt8) -> UInt8 {
    let v = Int(c) * Int(a) + Int(bg) * (255 - Int(a))
    return UInt8((v + 127) / 255)
}

func convertLayout(
    _ p: [UInt8], width w: Int, height h: Int, channels c: Int,
    to layout: DecodedLayout, background bg: (UInt8, UInt8, UInt8)
) -> Image {
    let n = w * h
    switch layout {
    case .rgb:
        if c == 3 { return Image(unchecked: w, h, 3, p) }
        var out = [UInt8](repeating: 0, count: n * 3)
        for i in 0..<n {
            switch c {
            case 1:
                out[3 * i] = p[i]
                out[3 * i + 1] = p[i]
                out[3 * i + 2] = p[i]
            case 2:
                let a = p[2 * i + 1]
                out[3 * i] = composite(p[2 * i], a, bg.0)
                out[3 * i + 1] = composite(p[2 * i], a, bg.1)
                out[3 * i + 2] = composite(p[2 * i], a, bg.2)
            default:
                let a = p[4 * i + 3]
                out[3 * i] = composite(p[4 * i], a, bg.0)
                out[3 * i + 1] = composite(p[4 * i + 1], a, bg.1)
                out[3 * i + 2] = composite(p[4 * i + 2], a, bg.2)
            }
        }
        return Image(unchecked: w, h, 3, out)
    case .rgba:
        if c == 4 { return Image(unchecked: w, h, 4, p) }
        var out = [UInt8](repeating: 255, count: n * 4)
        for i in 0..<n {
            switch c {
            case 1:
                out[4 * i] = p[i]
                out[4 * i + 1] = p[i]
                out[4 * i + 2] = p[i]
            case 2:
                out[4 * i] = p[2 * i]
                out[4 * i + 1] = p[2 * i]
                out[4 * i + 2] = p[2 * i]
                out[4 * i + 3] = p[2 * i + 1]
            default:
                out[4 * i] = p[3 * i]
                out[4 * i + 1] = p[3 * i + 1]
                out[4 * i + 2] = p[3 * i + 2]
            }
        }
        return Image(unchecked: w, h, 4, out)
    case .grey:
        if c == 1 { return Image(unchecked: w, h, 1, p) }
        if c == 2 {
            // grey background: the luma of the RGB background
            let g = pilLuma(bg.0, bg.1, bg.2)
            var out = [UInt8](repeating: 0, count: n)
            for i in 0..<n { out[i] = composite(p[2 * i], p[2 * i + 1], g) }
            return Image(unchecked: w, h, 1, out)
        }
        let rgb = c == 3 ? Image(unchecked: w, h, 3, p) : convertLayout(p, width: w, height: h, channels: c, to: .rgb, background: bg)
        return rgb.toGrey()
    }
}

extension Image {
    /// The image in another channel layout, as `decodeImage` would give it (grey
    /// replicated, alpha composited on `background` for `.rgb`, opaque alpha added for `.rgba`).
    public func converted(to layout: DecodedLayout, background: (UInt8, UInt8, UInt8) = (255, 255, 255)) -> Image {
        if layout == .rgb && channels == 3 || layout == .rgba && channels == 4 || layout == .grey && channels == 1 { return self }
        return convertLayout(pixels, width: width, height: height, channels: channels, to: layout, background: background)
    }

    /// 1 channel with Pillow's `convert("L")` weights; alpha (if any) is dropped, not composited.
    public func toGrey() -> Image {
        if channels == 1 { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            let o = i * channels
            out[i] = pilLuma(pixels[o], pixels[o + 1], pixels[o + 2])
        }
        return Image(unchecked: width, height, 1, out)
    }

    /// 3 channels: grey replicated; RGBA alpha composited on `background` (default white).
    public func toRGB(background: (UInt8, UInt8, UInt8) = (255, 255, 255)) -> Image {
        convertLayout(pixels, width: width, height: height, channels: channels, to: .rgb, background: background)
    }

    /// 4 channels, alpha 255 where there was none.
    public func toRGBA() -> Image {
        convertLayout(pixels, width: width, height: height, channels: channels, to: .rgba, background: (255, 255, 255))
    }

    /// Applies an EXIF orientation (1–8) so the result is upright, like
    /// `PIL.ImageOps.exif_transpose`: 2 mirror, 3 rotate 180°, 4 flip vertical,
    /// 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise.
    public func oriented(exif orientation: Int) -> Image {
        let w = width
        let h = height
        let c = channels
        let swap = orientation >= 5 && orientation <= 8
        let ow = swap ? h : w
        let oh = swap ? w : h
        // source coordinates of output (x, y)
        let map: (Int, Int) -> (Int, Int)
        switch orientation {
        case 2: map = { x, y in (w - 1 - x, y) }
        case 3: map = { x, y in (w - 1 - x, h - 1 - y) }
        case 4: map = { x, y in (x, h - 1 - y) }
        case 5: map = { x, y in (y, x) }
        case 6: map = { x, y in (y, h - 1 - x) }
        case 7: map = { x, y in (w - 1 - y, h - 1 - x) }
        case 8: map = { x, y in (w - 1 - y, x) }
        default: return self
        }
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<oh {
            for x in 0..<ow {
                let (sx, sy) = map(x, y)
                let s = (sy * w + sx) * c
                let d = (y * ow + x) * c
                for k in 0..<c { out[d + k] = pixels[s + k] }
            }
        }
        return Image(unchecked: ow, oh, c, out)
    }
}

/// Encodes an 8-bit grey, grey+alpha, RGB or RGBA image as PNG (rows filtered, deflated
/// by libdeflate). `fast`: the Up filter and the fastest deflate level, for pictures made
/// per request (overlays, activation grids); otherwise each row gets the filter that
/// suits it and a stronger level, for results that are cached and served many times.
public func encodePNG(_ image: Image, fast: Bool = false) throws -> Data {
    var out: UnsafeMutablePointer<UInt8>? = nil
    var size = 0
    var message = [CChar](repeating: 0, count: 256)
    let status = image.pixels.withUnsafeBufferPointer { px in
        cl_png_encode(
            px.baseAddress, UInt32(image.width), UInt32(image.height), Int32(image.channels), fast ? 1 : 0,
            &out, &size, &message, message.count)
    }
    defer { cl_codec_free(out) }
    guard status == CL_OK, let bytes = out else {
        let text = String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if status == CL_ERR_NO_MEMORY { throw ImagingError.outOfMemory }
        throw ImagingError.unsupported("PNG encode: \(text)")
    }
    return Data(bytes: bytes, count: size)
}
