import Foundation
import Testing

@testable import Visualization

/// The comparison of methods (`CompareRequest`): its canonical form, its cost check, and
/// that each method's map and scores are exactly what a heatmap request gives.
private let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private var session: ModelSession { bundledRequestSession }

@Test func compareRequestCanonicalFillsInTheDefaultsAndChecksEveryField() throws {
    let c = try CompareRequest().canonical(for: session)
    // The default set: every method of at most 64 passes at top_activation (1280 channels),
    // so Score-CAM and Ablation-CAM (1281 each) are left out.
    #expect(c.methods == CAMMethod.allCases.filter { $0 != .scorecam && $0 != .ablationcam }, "\(c.methods)")
    #expect(c.metrics == [.deletion, .insertion, .drop])
    #expect(c.layer == "top_activation")
    #expect(c.steps == 12 * 4)
    #expect(try c.canonical(for: session) == c, "canonical is idempotent")

    // Order and repeats do not matter; a class label becomes its index.
    var a = CompareRequest(methods: [.saliency, .gradcam, .saliency])
    (a.metrics, a.classChoice) = ([.road, .deletion, .road], "tabby")
    var b = CompareRequest(methods: [.gradcam, .saliency])
    (b.metrics, b.classChoice) = ([.deletion, .road], "281")
    #expect(try a.canonical(for: session) == b.canonical(for: session))
    // Only pixel attributions: no layer is read, whatever was named.
    var pixels = CompareRequest(methods: [.saliency])
    pixels.layer = "stem_activation"
    #expect(try pixels.canonical(for: session).layer == nil)
    // A small layer lets Score-CAM into the default set (32 channels: 33 passes).
    var small = CompareRequest()
    small.layer = "stem_activation"
    #expect(try small.canonical(for: session).methods.contains(.scorecam))

    var bad = CompareRequest()
    bad.alpha = 1.5
    #expect(throws: RequestError.badParameter(name: "alpha", value: "1.5", allowed: "give a number in 0.0...1.0")) {
        try bad.canonical(for: session)
    }
    bad = CompareRequest()
    bad.overlaySize = 15
    #expect(throws: RequestError.badParameter(name: "overlay_size", value: "15", allowed: "give an integer in 16...2048")) {
        try bad.canonical(for: session)
    }
    bad = CompareRequest()
    bad.metrics = []
    #expect(throws: RequestError.self) { try bad.canonical(for: session) }
    bad = CompareRequest()
    bad.layer = "nope"
    #expect(throws: RequestError.unknownLayer("nope", valid: session.keras.layers.map(\.name))) { try bad.canonical(for: session) }
    bad = CompareRequest()
    bad.classChoice = "1000"
    #expect(throws: RequestError.classOutOfRange(1000, count: 1000)) { try bad.canonical(for: session) }
    bad = CompareRequest()
    bad.layer = "predictions"
    #expect(throws: RequestError.self) { try bad.canonical(for: session) }
}

@Test func compareRequestCostIsEachMethodPlusItsMetrics() throws {
    let all = try CompareRequest(methods: CAMMethod.allCases).canonical(for: session)
    let passes = Dictionary(try all.passes(for: session), uniquingKeysWith: { a, _ in a })
    // Deletion and insertion 51 passes each, drop 2.
    #expect(passes[.gradcam] == 1 + 104)
    #expect(passes[.scorecam] == 1281 + 104)
    #expect(passes[.smoothgrad] == 25 + 104)
    let total = passes.values.reduce(0, +)
    #expect(total == 4087, "the figure the settings and docs/service.md quote")
    try all.checkCost(for: session, limits: RenderLimits(maxHeatmapPasses: 2048, maxComparePasses: 4087))
    #expect {
        try all.checkCost(for: session, limits: RenderLimits(maxComparePasses: 4086))
    } throws: { error in
        guard case .tooCostly(let detail) = error as? RequestError else { return false }
        return detail.contains("4087") && detail.contains("scorecam 1385") && detail.contains("server.max_compare_passes")
    }
    #expect {
        try all.checkCost(for: session, limits: RenderLimits(maxHeatmapPasses: 1000))
    } throws: { error in
        guard case .tooCostly(let detail) = error as? RequestError else { return false }
        return detail.contains("1385") && detail.contains("server.max_heatmap_passes")
    }
}

@Test func comparisonScoresAreTheHeatmapRequestsScoresAndProgressCoversEveryStep() throws {
    let image = try Data(contentsOf: root.appendingPathComponent("public/samples/chelsea.png"))
    var request = CompareRequest(methods: [.gradcam, .hirescam])
    request.metrics = [.deletion, .drop]
    var seen: [(Int, Int)] = []
    let document = try session.compare(request, input: .image(image)) { step, steps in
        seen.append((step, steps))
        return true
    }
    #expect(seen.map(\.0) == Array(0...6) && seen.allSatisfy { $0.1 == 6 }, "\(seen)")
    #expect(document.methods.map(\.method) == [.gradcam, .hirescam])
    for row in document.methods {
        var h = HeatmapRequest()
        (h.method, h.metrics, h.format) = (row.method, [.deletion, .drop], .json)
        let json = try session.render(h, input: .image(image)).body
        let heatmap = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let metrics = try #require(heatmap["metrics"] as? [String: Any])
        #expect(heatmap["class"] as? Int == document.class)
        for (key, value) in [
            ("deletion_auc", row.scores.deletionAUC), ("average_drop", row.scores.averageDrop),
            ("increase_in_confidence", row.scores.increaseInConfidence),
        ] {
            let expected = try #require(metrics[key] as? Double, "\(key)")
            #expect(abs(try #require(value) - expected) <= 1e-6, "\(row.method) \(key): \(value!) vs \(expected)")
        }
        #expect(row.scores.insertionAUC == nil && row.scores.deletionCurve == nil)
        let png = try #require(Data(base64Encoded: row.overlayPNG))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        #expect(max(row.overlayWidth, row.overlayHeight) == 320, "chelsea (451×300) fitted to the default 320")
    }
    let best = try #require(document.best["deletion_auc"])
    let lowest = document.methods.map { $0.scores.deletionAUC! }.min()!
    #expect(best == document.methods.filter { $0.scores.deletionAUC == lowest }.map(\.method.rawValue))
    #expect(document.best["road_combined"] == nil, "only asked scores are ranked")

    // A false from progress stops it between steps.
    var calls = 0
    #expect(throws: VisualizationError.cancelled) {
        try session.compare(request, input: .image(image)) { step, _ in
            calls += 1
            return step < 2
        }
    }
    #expect(calls == 3, "stopped at the step it was told to")
}
