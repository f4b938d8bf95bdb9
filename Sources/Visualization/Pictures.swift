import Engine
import Imaging

/// The pictures the book draws, from the numbers the visualisations compute.

/// One layer's activations for one image as a grid: every channel normalised the
/// book's way (`bookNormalizedChannels`), coloured, `cols` per row (the book: 16),
/// as many rows as needed — the book drops the last partial row; we keep it.
public func activationGrid(
    _ activation: Tensor, cols: Int = 16, colormap: Colormap = .viridis,
    margin: Int = 1
) throws -> Image {
    guard cols >= 1 else { throw VisualizationError.invalid("cols must be at least 1") }
    let planes = try bookNormalizedChannels(activation)
    let (h, w) = (activation.shape[1], activation.shape[2])
    let cells = try planes.map { try colormap.apply(indices: $0, width: w, height: h) }
    let columns = min(cols, cells.count)
    return try composeGrid(
        cells, rows: GridLayout.rows(for: cells.count, cols: columns), cols: columns,
        margin: margin, background: [255])
}

/// One channel of one image's activations at full size, book-normalised and coloured.
public func activationChannel(_ activation: Tensor, channel: Int, colormap: Colormap = .viridis) throws -> Image {
    guard activation.rank == 4 else {
        throw VisualizationError.invalid("expected a feature map [1, h, w, c], got \(activation.shape)")
    }
    let c = activation.shape[3]
    guard channel >= 0, channel < c else {
        throw VisualizationError.invalid("channel \(channel) is out of range: the layer has \(c) (0...\(c - 1))")
    }
    let planes = try bookNormalizedChannels(activation)
    return try colormap.apply(indices: planes[channel], width: activation.shape[2], height: activation.shape[1])
}

/// Filter-visualisation images [n, h, w, 3] deprocessed the book's way into a grid
/// (the book: 8 per row, 5-pixel black margin).
public func filterGrid(_ images: Tensor, cols: Int = 8, margin: Int = 5) throws -> Image {
    let cells = try filterImages(images)
    let columns = min(cols, cells.count)
    return try composeGrid(
        cells, rows: GridLayout.rows(for: cells.count, cols: columns), cols: columns,
        margin: margin, background: [0])
}

/// Each image of [n, h, w, 3] deprocessed with the book's recipe to an 8-bit RGB image.
public func filterImages(_ images: Tensor) throws -> [Image] {
    guard images.rank == 4 else { throw VisualizationError.invalid("expected images [n, h, w, c], got \(images.shape)") }
    let (h, w, c) = (images.shape[1], images.shape[2], images.shape[3])
    let per = h * w * c
    return try (0..<images.batch).map { n in
        let bytes = bookDeprocess(images.scalars[(n * per)..<((n + 1) * per)])
        return try Image(width: w, height: h, channels: c, pixels: bytes)
    }
}

/// The book's first look at a network in one picture: a row per spatial layer
/// (in network order), its first `channels` channels for one image, each
/// book-normalised, coloured and scaled (nearest) to `cellSize` so shallow and
/// deep layers line up; the row's first cell is labelled with the layer's name, the others with their channel. Shows at a glance
/// how deeper layers turn abstract and sparse.
public func activationOverview(
    _ layers: [(name: String, activation: Tensor)], channels: Int = 8,
    cellSize: Int = 64, colormap: Colormap = .viridis
) throws -> Image {
    guard channels >= 1, cellSize >= 8 else { throw VisualizationError.invalid("channels ≥ 1 and cell size ≥ 8 needed") }
    var cells: [Image] = []
    var labels: [String] = []
    for (name, activation) in layers {
        let planes = try bookNormalizedChannels(activation)
        let (h, w) = (activation.shape[1], activation.shape[2])
        for ch in 0..<channels {
            if ch < planes.count {
                cells.append(
                    try colormap.apply(indices: planes[ch], width: w, height: h)
                        .resized(width: cellSize, height: cellSize, filter: .nearest))
                labels.append(ch == 0 ? name : "\(ch)")
            } else {
                cells.append(Image(width: cellSize, height: cellSize, channels: 3, fill: [255]))
                labels.append("")
            }
        }
    }
    guard !cells.isEmpty else { throw VisualizationError.invalid("no spatial layers to show") }
    return try composeGrid(
        cells, rows: layers.count, cols: channels, margin: 2, background: [255],
        labels: labels, labelColour: [0])
}
