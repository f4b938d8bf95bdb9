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
        #expect(grid[3, 0, 0] == 255)  // margin column
        #expect(grid[4, 0, 0] == 11 && grid[8, 0, 0] == 12)
        #expect(grid[0, 2, 0] == 255)  // margin row
        #expect(grid[0, 3, 0] == 13 && grid[4, 4, 0] == 14)
        #expect(grid[8, 3, 0] == 255)  // the missing 6th cell is background
        #expect(grid.pixels.filter { $0 == 255 }.count == 11 * 5 - 5 * 6)
    }

    @Test func gridRejectsBadInput() {
        let a = Image(width: 3, height: 2, channels: 3)
        let b = Image(width: 2, height: 2, channels: 3)
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

@Suite struct LabelTests {
    @Test func fontDrawsKnownGlyph() {
        var img = Image(width: 7, height: 9, channels: 1, fill: [0])
        img.drawText("1", x: 1, y: 1, colour: [200])
        // glyph "1": rows 00100 01100 00100 00100 00100 00100 01110
        let rows = (1...7).map { y in (1...5).map { x in img[x, y, 0] == 200 ? "#" : "." }.joined() }
        #expect(rows == ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."])
        #expect(img.pixels.filter { $0 == 200 }.count == 10)
        #expect(PixelFont.width(of: "12") == 11 && PixelFont.width(of: "12", scale: 2) == 22)
        // lower case draws as upper case; unknown characters as "?"
        var a = Image(width: 5, height: 7, channels: 1)
        var b = a
        var q = a
        var u = a
        a.drawText("a", x: 0, y: 0, colour: [1])
        b.drawText("A", x: 0, y: 0, colour: [1])
        q.drawText("?", x: 0, y: 0, colour: [1])
        u.drawText("é", x: 0, y: 0, colour: [1])
        #expect(a == b && q == u && a != q)
        // clipping: drawing partly outside does not crash and draws only inside
        var c = Image(width: 3, height: 3, channels: 3)
        c.drawText("88", x: -1, y: -2, colour: [9, 9, 9], scale: 2)
        #expect(c.pixels.contains(9))
    }

    @Test func gridWithLabels() throws {
        let cells = (0..<3).map { Image(width: 20, height: 10, channels: 3, fill: [UInt8(50 * $0), 0, 0]) }
        let grid = try composeGrid(
            cells, rows: 1, cols: 3, margin: 2, background: [255, 255, 255],
            labels: ["0", "conv1", "a_very_long_name"], labelColour: [0, 0, 255])
        #expect(grid.width == 3 * 20 + 2 * 2 && grid.height == 10 + 9)
        // cell pixels untouched, label strip has blue text pixels and white background
        #expect(grid.pixel(x: 25, y: 5) == [50, 0, 0])
        func bluePixels(inCell i: Int) -> Int {
            var n = 0
            for y in 10..<19 { for x in (i * 22)..<(i * 22 + 20) where grid.pixel(x: x, y: y) == [0, 0, 255] { n += 1 } }
            return n
        }
        #expect(bluePixels(inCell: 0) > 0 && bluePixels(inCell: 1) > bluePixels(inCell: 0) && bluePixels(inCell: 2) > 0)
        // nothing spills into the margin columns
        for y in 0..<grid.height { #expect(grid.pixel(x: 20, y: y) == [255, 255, 255] && grid.pixel(x: 21, y: y) == [255, 255, 255]) }
        #expect(throws: ImagingError.self) { try composeGrid(cells, rows: 1, cols: 3, labels: ["a", "b", "c", "d"]) }
    }
}
