import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// `method=auto` resolves, inside the canonical request, to the method the measured rule
/// picks for the layer (docs/cli.md "Filter methods", docs/filter-structure.md), so its content
/// address is the concrete method's.
private let session: ModelSession = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try! ModelSession(profile: ModelProfile.read(contentsOf: root.appendingPathComponent("models/efficientnet_lite0.json")))
}()

private func resolved(_ layer: String, count: Int? = 1) throws -> FilterRequest {
    var r = FilterRequest(layer: layer, count: count)
    r.method = .auto
    return try r.canonical(for: session)
}

@Test func autoIsTheBookInTheFirstConvolutionAndLucidInTheLast() throws {
    let shallow = try resolved("stem_activation", count: nil)
    #expect(shallow.method == .book && shallow.steps == 40 && shallow.start == .grey)
    let deep = try resolved("top_activation", count: nil)
    #expect(deep.method == .lucid && deep.steps == 256 && deep.start == nil)
    // The grey-green texture: block3a_expand_activation/7 is drawn by lucid.
    #expect(try resolved("block3a_expand_activation").method == .lucid)
    // A class logit has no feature map: lucid.
    #expect(try resolved("predictions").method == .lucid)
}

@Test func autoSharesTheConcreteMethodsIdentity() throws {
    for (layer, method) in [("stem_activation", FilterMethod.book), ("top_activation", .lucid)] {
        var explicit = FilterRequest(layer: layer, count: 4)
        explicit.method = method
        let auto = try resolved(layer, count: 4)
        #expect(auto == (try explicit.canonical(for: session)))
        #expect(auto.contentAddress(model: "m") == (try explicit.canonical(for: session)).contentAddress(model: "m"))
        #expect(try auto.canonical(for: session) == auto, "canonical is idempotent")
    }
}

@Test func autoFollowsTheDepthRuleOnEveryGalleryLayer() throws {
    let depths = session.galleryLayers.map { session.convolutionDepth(of: $0.target) }
    #expect(depths.first == 0 && depths.last == 1 && depths == depths.sorted())
    var books: [String] = []
    for ((_, target), depth) in zip(session.galleryLayers, depths) {
        let method = try resolved(target.path).method
        #expect(method == (depth <= FilterMethod.autoBookDepth ? .book : .lucid), "\(target.path) at depth \(depth)")
        if method == .book { books.append(target.path) }
    }
    #expect(books.first == "stem_activation" && books.count < session.galleryLayers.count / 2, "\(books)")
}
