import Foundation
import Testing

@testable import Imaging

@Suite struct ColormapTests {
    @Test(arguments: Colormap.allCases)
    func goldenEntriesFromMatplotlib(_ map: Colormap) throws {
        let golden = try #require(manifest.colormaps[map.rawValue])
        #expect(golden.count >= 9)
        for (index, rgb) in golden {
            let i = try #require(UInt8(index))
            #expect(map.color(i).map(Int.init) == rgb, "\(map.rawValue)[\(i)]")
        }
        #expect(map.table.count == 768)
    }

    @Test func knownValues() {
        #expect(Colormap.viridis.color(0) == [68, 1, 84])
        #expect(Colormap.jet.color(0) == [0, 0, 127])
        #expect(Colormap.jet.color(255) == [127, 0, 0])
        // matplotlib's 'gray' with bytes=True truncates 255·(i/255): e.g. 33 → 32. We keep matplotlib's bytes.
        #expect(Colormap.grey.color(33) == [32, 32, 32])
        for i in 0...255 {
            let g = Colormap.grey.color(UInt8(i))
            #expect(g[0] == g[1] && g[1] == g[2] && abs(Int(g[0]) - i) <= 1)
        }
    }

    @Test func quantisationIsTheBooks() throws {
        // np.uint8(255 * v): truncation
        #expect(Colormap.index(normalized: 0.5) == 127)
        #expect(Colormap.index(normalized: 1.0) == 255)
        #expect(Colormap.index(normalized: 0.999) == 254)
        #expect(Colormap.index(normalized: -3) == 0)
        #expect(Colormap.index(normalized: 7) == 255)
        #expect(Colormap.index(normalized: .nan) == 0)
        let img = try Colormap.jet.apply(normalized: [0, 1, 0.5, 0.25], width: 2, height: 2)
        #expect(img.width == 2 && img.channels == 3)
        #expect(img.pixel(x: 0, y: 0) == Colormap.jet.color(0))
        #expect(img.pixel(x: 1, y: 0) == Colormap.jet.color(255))
        #expect(img.pixel(x: 0, y: 1) == Colormap.jet.color(127))
        #expect(img.pixel(x: 1, y: 1) == Colormap.jet.color(63))
        #expect(throws: ImagingError.self) { try Colormap.jet.apply(indices: [1, 2, 3], width: 2, height: 2) }
    }
}
