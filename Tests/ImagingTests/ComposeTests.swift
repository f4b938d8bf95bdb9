import Foundation
import Testing
@testable import Imaging

@Suite struct ComposeTests {
    @Test func booksFilterGridGeometry() {
        // 8×8 filters of 150 px with a 5 px margin: 8·150 + 7·5 = 1235
        let g = GridLayout(rows: 8, cols: 8, cellWidth: 150, cellHeight: 150, margin: 5)
        #expect(g.width == 1235 && g.height == 1235)
        #expect(g.origin(ofCell: 9) == (155, 155))
        #expect(g.origin(ofCell: 63) == (1085, 1085))
        let outer = GridLayout(rows: 2, cols: 3, cellWidth: 10, cellHeight: 4, margin: 2, outerMargin: true)
        #expect(outer.width == 3 * 10 + 2 * 2 + 4 && outer.height == 2 * 4 + 2 + 4)
        #expect(outer.origin(ofCell: 0) == (2, 2))
        #expect(GridLayout.rows(for: 32, cols: 16) == 2 && GridLayout.rows(for: 33, cols: 16) == 3)
    }

    @Test func gridPlacesCellsRowMajor() throws {
        let cells = (0..<5).map { Image(width: 3, height: 2, channels: 1, fill: [UInt8(10 + $0)]) }
        let grid = try composeGrid(cells, rows: 2, cols: 3, margin: 1, background: [255])
        #expect(grid.width == 11 && grid.height == 5)
        #expect(grid[0, 0, 0] == 10 && grid[2, 1, 0] == 10)
        #expect(grid[3, 0, 0] == 255)           // margin column
        #expect(grid[4, 0, 0] == 11 && grid[8, 0, 0] == 12)
        #expect(grid[0, 2, 0] == 255)           // margin row
        #expect(grid[0, 3, 0] == 13 && grid[4, 4, 0] == 14)
        #expect(grid[8, 3, 0] == 255)           // the missing 6th cell is background
        #expect(grid.pixels.filter { $0 == 255 }.count == 11 * 5 - 5 * 6)
    }

    @Test func gridRejectsBadInput() {
        let a = Image(width: 3, height: 2, channels: 3), b = Image(width: 2, height: 2, channels: 3)
        #expect(throws: ImagingError.self) { try composeGrid([a, b], rows: 1, cols: 2) }
        #expect(throws: ImagingError.self) { try composeGrid([a, a, a], rows: 1, cols: 2) }
        #expect(throws: ImagingError.self) { try composeGrid([], rows: 1, cols: 2) }
        #expect(throws: ImagingError.self) { try composeGrid([a], rows: 1, cols: 1, background: [1, 2]) }
    }

    @Test func booksOverlayClipsAndRounds() throws {
        let heat = try Image(width: 4, height: 1, channels: 1, pixels: [255, 100, 5, 0])
        let photo = try Image(width: 4, height: 1, channels: 1, pixels: [200, 10, 0, 77])
        // 255·0.4 + 200 = 302 → 255; 100·0.4 + 10 = 50; 5·0.5 = 2.5 → 2 (half to even); 77
        #expect(try overlayAdditive(heatmap: heat, onto: photo, alpha: 0.4).pixels == [255, 50, 2, 77])
        #expect(try overlayAdditive(heatmap: heat, onto: photo, alpha: 0.5).pixels[2] == 2)
        #expect(throws: ImagingError.self) { try overlayAdditive(heatmap: heat, onto: Image(width: 3, height: 1, channels: 1)) }
    }

    @Test func alphaBlend() throws {
        let top = Image(width: 2, height: 1, channels: 3, fill: [200, 100, 0])
        let bottom = Image(width: 2, height: 1, channels: 3, fill: [0, 100, 200])
        #expect(try blend(top, over: bottom, alpha: 0.25).pixels == [50, 100, 150, 50, 100, 150])
        let mapped = try blend(top, over: bottom, alphaMap: [1, 0])
        #expect(mapped.pixel(x: 0, y: 0) == [200, 100, 0] && mapped.pixel(x: 1, y: 0) == [0, 100, 200])
        #expect(throws: ImagingError.self) { try blend(top, over: bottom, alphaMap: [1]) }
    }
}
