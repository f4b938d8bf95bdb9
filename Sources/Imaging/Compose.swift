import Foundation

/// Placement of `rows`×`cols` equal cells with `margin` pixels between them
/// (and around them when `outerMargin`), as the book's filter grid
/// (`8·size + 7·margin` wide) and activation grid (margin 0) do. `labelHeight`
/// adds a strip of that many pixels under every cell for a label.
public struct GridLayout: Sendable, Equatable {
    public var rows: Int, cols: Int, cellWidth: Int, cellHeight: Int, margin: Int, outerMargin: Bool, labelHeight: Int

    public init(rows: Int, cols: Int, cellWidth: Int, cellHeight: Int, margin: Int = 0, outerMargin: Bool = false, labelHeight: Int = 0) {
        self.rows = rows
        self.cols = cols
        self.cellWidth = cellWidth
        self.cellHeight = cellHeight
        self.margin = margin
        self.outerMargin = outerMargin
        self.labelHeight = labelHeight
    }

    /// Rows needed for `count` cells at `cols` per row (at least 1).
    public static func rows(for count: Int, cols: Int) -> Int { max(1, (count + cols - 1) / cols) }

    public var width: Int { cols * cellWidth + (cols - 1) * margin + (outerMargin ? 2 * margin : 0) }
    public var height: Int { rows * (cellHeight + labelHeight) + (rows - 1) * margin + (outerMargin ? 2 * margin : 0) }

    /// Top-left corner of cell `index` (row-major); its label strip starts `cellHeight` below.
    public func origin(ofCell index: Int) -> (x: Int, y: Int) {
        let r = index / cols
        let c = index % cols
        let o = outerMargin ? margin : 0
        return (o + c * (cellWidth + margin), o + r * (cellHeight + labelHeight + margin))
    }
}

/// Composes same-size cells row-major into a grid on `background`
/// (1 or `channels` values). Cells beyond `rows·cols` are an error; missing cells stay background.
/// All cells must share width, height and channel count.
/// `labels` (one per cell, or fewer): drawn with the built-in 5×7 font in a strip
/// of `8·labelScale + 1` pixels under each cell, in `labelColour`, cut to the cell width.
public func composeGrid(
    _ cells: [Image], rows: Int, cols: Int, margin: Int = 0, outerMargin: Bool = false,
    background: [UInt8] = [0], labels: [String]? = nil, labelColour: [UInt8] = [255],
    labelScale: Int = 1
) throws -> Image {
    guard let first = cells.first else { throw ImagingError.invalidArgument("no cells") }
    guard rows > 0, cols > 0, margin >= 0, cells.count <= rows * cols else {
        throw ImagingError.invalidArgument("\(cells.count) cells in a \(rows)x\(cols) grid")
    }
    for c in cells where c.width != first.width || c.height != first.height || c.channels != first.channels {
        throw ImagingError.invalidArgument("grid cells differ in size or channels")
    }
    guard background.count == 1 || background.count == first.channels else {
        throw ImagingError.invalidArgument("background has \(background.count) values for \(first.channels) channels")
    }
    if let labels {
        guard labels.count <= cells.count, labelScale >= 1, labelColour.count == 1 || labelColour.count == first.channels else {
            throw ImagingError.invalidArgument(
                "\(labels.count) labels for \(cells.count) cells, scale \(labelScale), colour \(labelColour)")
        }
    }
    let labelHeight = labels == nil ? 0 : 8 * labelScale + 1
    let layout = GridLayout(
        rows: rows, cols: cols, cellWidth: first.width, cellHeight: first.height, margin: margin,
        outerMargin: outerMargin, labelHeight: labelHeight)
    var out = Image(width: layout.width, height: layout.height, channels: first.channels, fill: background)
    let ch = first.channels
    let rowBytes = first.width * ch
    for (i, cell) in cells.enumerated() {
        let (ox, oy) = layout.origin(ofCell: i)
        for y in 0..<cell.height {
            let d = ((oy + y) * layout.width + ox) * ch
            out.pixels.replaceSubrange(d..<(d + rowBytes), with: cell.pixels[(y * rowBytes)..<((y + 1) * rowBytes)])
        }
    }
    if let labels {
        let fit = (first.width + labelScale) / (PixelFont.advance * labelScale)
        for (i, label) in labels.enumerated() {
            let (ox, oy) = layout.origin(ofCell: i)
            var text = String(label.prefix(fit))
            if text.count < label.count, fit >= 2 { text = String(label.prefix(fit - 1)) + "." }
            let x = ox + max(0, (first.width - PixelFont.width(of: text, scale: labelScale)) / 2)
            // draw into a scratch image of the strip, clipped to this cell's columns
            var strip = Image(width: first.width, height: labelHeight, channels: first.channels, fill: background)
            strip.drawText(text, x: x - ox, y: labelScale, colour: labelColour, scale: labelScale)
            for y in 0..<labelHeight {
                let d = ((oy + first.height + y) * layout.width + ox) * ch
                out.pixels.replaceSubrange(d..<(d + rowBytes), with: strip.pixels[(y * rowBytes)..<((y + 1) * rowBytes)])
            }
        }
    }
    return out
}

/// Rounds half to even and saturates to 0…255 (OpenCV's `saturate_cast<uchar>`, as the book's `cv2.imwrite` does).
@inline(__always) func saturate8(_ v: Float) -> UInt8 {
    if v.isNaN { return 0 }
    let r = v.rounded(.toNearestOrEven)
    return r <= 0 ? 0 : (r >= 255 ? 255 : UInt8(r))
}

/// The book's Grad-CAM overlay: `heatmap · alpha + image`, then clipped to 8 bits
/// (rounded to nearest). Both RGB (or both the same channel count) and the same size.
public func overlayAdditive(heatmap: Image, onto image: Image, alpha: Float = 0.4) throws -> Image {
    guard heatmap.width == image.width, heatmap.height == image.height, heatmap.channels == image.channels else {
        throw ImagingError.invalidArgument(
            "overlay of \(heatmap.width)x\(heatmap.height)x\(heatmap.channels) on \(image.width)x\(image.height)x\(image.channels)")
    }
    guard alpha.isFinite else { throw ImagingError.invalidArgument("overlay alpha \(alpha) is not a number") }
    var out = image
    heatmap.pixels.withUnsafeBufferPointer { h in
        out.pixels.withUnsafeMutableBufferPointer { o in
            for i in 0..<o.count { o[i] = roundedByte(Float(h[i]) * alpha + Float(o[i])) }
        }
    }
    return out
}

/// `saturate8` for a finite value, in operations that vectorise (no NaN branch, no
/// trapping conversion): clamp to [0, 255], then adding 1.5·2²³ leaves the nearest
/// integer (ties to even, the FPU's rounding) in the low bits of the sum.
@inline(__always) func roundedByte(_ v: Float) -> UInt8 {
    let c = Swift.min(Swift.max(v, 0), 255)
    return UInt8(truncatingIfNeeded: (c + 12_582_912).bitPattern)
}

/// Proper alpha blend: `alpha · top + (1 − alpha) · bottom`, rounded.
public func blend(_ top: Image, over bottom: Image, alpha: Float) throws -> Image {
    try blend(top, over: bottom, alphaMap: [Float](repeating: alpha, count: top.width * top.height))
}

/// Per-pixel alpha blend with `alphaMap` (width·height values in [0, 1], clamped), e.g.
/// a normalised heatmap so cold regions leave the photo untouched.
public func blend(_ top: Image, over bottom: Image, alphaMap: [Float]) throws -> Image {
    guard top.width == bottom.width, top.height == bottom.height, top.channels == bottom.channels,
        alphaMap.count == top.width * top.height
    else {
        throw ImagingError.invalidArgument("blend sizes differ")
    }
    var out = bottom
    let c = top.channels
    for p in 0..<alphaMap.count {
        let a = min(max(alphaMap[p].isNaN ? 0 : alphaMap[p], 0), 1)
        for k in 0..<c {
            let i = p * c + k
            out.pixels[i] = saturate8(a * Float(top.pixels[i]) + (1 - a) * Float(bottom.pixels[i]))
        }
    }
    return out
}
