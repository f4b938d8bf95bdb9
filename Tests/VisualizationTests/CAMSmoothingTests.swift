import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// `eigen_smooth` and `aug_smooth` against their NumPy/TF restatements
/// (tools/fixtures/make_cam_smoothing_fixtures.py, pytorch-grad-cam 1.5's definitions) on
/// the committed CAM fixture model and inputs (Tests/Fixtures/visualization/cam_smoothing).
/// Tolerance: 1e-4 max |Δ| on the maps normalised to [0, 1].
private let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/visualization")
private let folder = root.appendingPathComponent("cam_smoothing")

private struct SmoothingManifest: Decodable {
    struct Image: Decodable {
        struct Case: Decodable {
            let name: String
            let class_index: Int
            let eigen_smooth: [String: String]
            let aug_smooth: [String: String]
        }
        let name: String
        let input: String
        let cases: [Case]
    }
    let layer: String
    let images: [Image]
}

private let manifest: SmoothingManifest = {
    let data = try! Data(contentsOf: folder.appendingPathComponent("manifest.json"))
    return try! JSONDecoder().decode(SmoothingManifest.self, from: data)
}()

private let model: KerasModel = try! KerasModel.load(contentsOf: root.appendingPathComponent("cam_classifier.k3.h5"))

private func method(_ key: String) throws -> CAMMethod {
    try #require(CAMMethod(rawValue: key.replacingOccurrences(of: "_", with: "-")))
}

private func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

private func check(smoothing: (CAMOptions) -> CAMOptions, files: (SmoothingManifest.Image.Case) -> [String: String]) throws
    -> (checked: Int, worst: Float)
{
    var checked = 0
    var worst: Float = 0
    for image in manifest.images {
        let x = try Tensor.readNPY(contentsOf: root.appendingPathComponent(image.input))
        for c in image.cases {
            let request = CAMRequest(
                layerNode: try model.network.node(named: manifest.layer), scoreNode: try #require(model.logitsNode),
                classIndex: c.class_index)
            for (key, file) in files(c).sorted(by: { $0.key < $1.key }) {
                let m = try method(key)
                let result = try model.network.classActivationMap(x, request, method: m, options: smoothing(CAMOptions(batchSize: 5)))
                let expected = try Tensor.readNPY(contentsOf: folder.appendingPathComponent(file))
                #expect(result.map.classIndex == c.class_index)
                let d = maxDiff(result.map.heatmap, expected.scalars)
                worst = max(worst, d)
                #expect(d <= 1e-4, "\(c.name) \(m.rawValue): max |Δ| = \(d)")
                // Smoothing is not a no-op here: the plain map differs.
                let plain = try model.network.classActivationMap(x, request, method: m)
                if expected.scalars.contains(where: { $0 > 0 }) {
                    #expect(maxDiff(plain.map.heatmap, expected.scalars) > 1e-3, "\(c.name) \(m.rawValue): smoothing changed nothing")
                }
                checked += 1
            }
        }
    }
    return (checked, worst)
}

@Test func eigenSmoothMatchesNumPy() throws {
    let (checked, worst) = try check(
        smoothing: {
            var o = $0
            o.eigenSmooth = true
            return o
        }, files: \.eigen_smooth)
    #expect(checked == 36)
    print("eigen_smooth: worst max |Δ| vs reference over \(checked) maps = \(worst)")
}

@Test func augSmoothMatchesTensorFlow() throws {
    let (checked, worst) = try check(
        smoothing: {
            var o = $0
            o.augSmooth = true
            return o
        }, files: \.aug_smooth)
    #expect(checked == 18)
    print("aug_smooth: worst max |Δ| vs reference over \(checked) maps = \(worst)")
}

@Test func smoothingCostsAndCanonicalForms() throws {
    #expect(CAMMethod.gradcam.passes(options: CAMOptions(augSmooth: true), layerChannels: 16) == 6)
    #expect(CAMMethod.ablationcam.passes(options: CAMOptions(augSmooth: true), layerChannels: 16) == 6 * 17)
    #expect(CAMMethod.saliency.passes(options: CAMOptions(augSmooth: true), layerChannels: 16) == 1)
    #expect(CAMMethod.gradcam.passes(options: CAMOptions(eigenSmooth: true), layerChannels: 16) == 1)
    #expect(mirrored([1, 2, 3, 4, 5, 6], width: 3) == [3, 2, 1, 6, 5, 4])
    // Where an option changes nothing, the canonical request drops it: one picture, one address.
    let session = try ModelSession(keras: model, profile: ModelProfile(modelURL: root.appendingPathComponent("cam_classifier.k3.h5")))
    var r = HeatmapRequest()
    r.eigenSmooth = true
    r.augSmooth = true
    for (m, eigen, aug) in [(CAMMethod.gradcam, true, true), (.eigencam, false, true), (.saliency, false, false)] {
        r.method = m
        let canonical = try r.canonical(for: session)
        #expect(canonical.eigenSmooth == eigen && canonical.augSmooth == aug, "\(m.rawValue)")
    }
}
