import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// Compares the visualisations with references computed by real Keras/TensorFlow
/// (GradientTape) and NumPy — Tests/Fixtures/visualization, made by
/// tools/fixtures/make_visualization_fixtures.py.
private let fixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/visualization")

private func npy(_ name: String) throws -> Tensor { try Tensor.readNPY(contentsOf: fixtures.appendingPathComponent(name)) }

private struct Manifest: Decodable {
    struct GradCAM: Decodable {
        struct Image: Decodable {
            struct Case: Decodable {
                let name: String
                let class_index: Int
                let score: String
                let gradcam: String
                let gradcampp: String
                let gradcam_all_zero: Bool
            }
            let name: String
            let input: String
            let cases: [Case]
        }
        let model: String
        let layer: String
        let images: [Image]
    }
    struct Ascent: Decodable {
        struct Run: Decodable {
            let filter: Int
            let losses: String
            let final: String
        }
        struct Batched: Decodable {
            let filters: [Int]
            let losses: String
            let final: String
        }
        struct Deprocessed: Decodable {
            let source: String
            let float32: String
            let near_boundary_pixels: Int
        }
        let model: String
        let layer: String
        let steps: Int
        let step_size: Float
        let start: String
        let runs: [Run]
        let batched: Batched
        let deprocessed: Deprocessed
    }
    struct Grid: Decodable {
        let model: String
        let layer: String
        let input: String
        let float32: String
        let near_boundary_pixels: Int
        let constant_channels: [Int]
    }
    let gradcam: GradCAM
    let filter_ascent: Ascent
    let activation_grid: Grid
}

private let manifest: Manifest = {
    let data = try! Data(contentsOf: fixtures.appendingPathComponent("manifest.json"))
    return try! JSONDecoder().decode(Manifest.self, from: data)
}()

private func load(_ file: String) throws -> KerasModel {
    try KerasModel.load(contentsOf: fixtures.appendingPathComponent(file))
}

// MARK: - Grad-CAM

@Test(arguments: [CAMMethod.gradcam, .gradcamPlusPlus])
func camMatchesGradientTapeReference(method: CAMMethod) throws {
    let g = manifest.gradcam
    let model = try load(g.model)
    let layer = try model.network.node(named: g.layer)
    var checked = 0
    for image in g.images {
        let x = try npy(image.input)
        for c in image.cases {
            let scoreNode = c.score == "logit" ? model.logitsNode! : model.network.outputNode
            let cam = try model.network.gradCAM(
                x, CAMRequest(layerNode: layer, scoreNode: scoreNode, classIndex: c.class_index),
                method: method)
            let reference = try npy(method == .gradcam ? c.gradcam : c.gradcampp)
            #expect(cam.height * cam.width == reference.count)
            let diff = zip(cam.heatmap, reference.scalars).map { abs($0 - $1) }.max()!
            // Issue tolerance: max abs difference ≤ 1e-3 after normalisation to [0, 1].
            #expect(diff <= 1e-3, "\(c.name) \(method): max |Δ| = \(diff)")
            if method == .gradcam && c.gradcam_all_zero { #expect(cam.heatmap.allSatisfy { $0 == 0 }) }
            checked += 1
        }
    }
    #expect(checked >= 6)
}

@Test func gradCAMDefaultsToTheTopClass() throws {
    let g = manifest.gradcam
    let model = try load(g.model)
    let x = try npy(g.images[0].input)
    let cam = try model.network.gradCAM(x, CAMRequest(layerNode: try model.network.node(named: g.layer), scoreNode: model.logitsNode!))
    let top1 = g.images[0].cases.first { $0.class_index >= 0 }!.class_index
    #expect(cam.classIndex == top1)
}

// MARK: - Book filter ascent

@Test func bookAscentMatchesKerasStepByStep() throws {
    let a = manifest.filter_ascent
    let model = try load(a.model)
    let layer = try model.network.node(named: a.layer)
    let start = try npy(a.start)
    for run in a.runs {
        var seen: [Int] = []
        let result = try model.network.bookFilterAscent(
            layerNode: layer, filters: [run.filter], start: start,
            parameters: FilterAscentParameters(steps: a.steps, stepSize: a.step_size, size: start.shape[1]),
            progress: {
                seen.append($0.step)
                return true
            })
        let reference = try npy(run.losses).scalars
        #expect(seen == Array(1...a.steps))
        #expect(result.lossHistory.count == reference.count)
        for (step, (ours, keras)) in zip(result.lossHistory.map { $0[0] }, reference).enumerated() {
            // Issue tolerance: loss after each step within 1e-3 relative.
            #expect(abs(ours - keras) <= 1e-3 * max(abs(keras), 1), "filter \(run.filter) step \(step + 1): \(ours) vs \(keras)")
        }
    }
}

@Test func batchedAscentEqualsSingleRuns() throws {
    let a = manifest.filter_ascent
    let model = try load(a.model)
    let layer = try model.network.node(named: a.layer)
    let one = try npy(a.start)
    let start = Tensor.concatenateBatches(Array(repeating: one, count: a.batched.filters.count))
    let result = try model.network.bookFilterAscent(
        layerNode: layer, filters: a.batched.filters, start: start,
        parameters: FilterAscentParameters(steps: a.steps, stepSize: a.step_size, size: one.shape[1]))
    let reference = try npy(a.batched.losses)  // (steps, n)
    let n = a.batched.filters.count
    for step in 0..<a.steps {
        for i in 0..<n {
            let keras = reference.scalars[step * n + i]
            #expect(abs(result.lossHistory[step][i] - keras) <= 1e-3 * max(abs(keras), 1))
        }
    }
}

@Test func ascentCanBeCancelled() throws {
    let a = manifest.filter_ascent
    let model = try load(a.model)
    #expect(throws: VisualizationError.cancelled) {
        _ = try model.network.bookFilterAscent(
            layerNode: try model.network.node(named: a.layer), filters: [0], start: try npy(a.start),
            parameters: FilterAscentParameters(steps: 40), progress: { $0.step < 3 })
    }
}

@Test func bookDeprocessMatchesNumPy() throws {
    let d = manifest.filter_ascent.deprocessed
    let final = try npy(d.source)
    let ours = bookDeprocess(final.scalars[...])
    let reference = try npy(d.float32).scalars
    var off = 0
    for (o, r) in zip(ours, reference) {
        let delta = abs(Int(o) - Int(r))
        #expect(delta <= 1)
        if delta == 1 { off += 1 }
    }
    // Only values within float rounding of an integer boundary may differ (by one level).
    #expect(off <= d.near_boundary_pixels)
}

// MARK: - Activation grid normalisation

@Test func bookChannelNormalisationMatchesNumPy() throws {
    let g = manifest.activation_grid
    let model = try load(g.model)
    let x = try npy(g.input)
    let node = try model.network.node(named: g.layer)
    let activation = try model.network.forward(x, stopAfter: node)[node]!
    let planes = try bookNormalizedChannels(activation)
    let reference = try npy(g.float32)  // (h, w, c)
    let c = planes.count
    #expect(reference.count == c * planes[0].count)
    var off = 0
    for ch in 0..<c {
        for p in 0..<planes[ch].count {
            let delta = abs(Int(planes[ch][p]) - Int(reference.scalars[p * c + ch]))
            #expect(delta <= 1)
            if delta == 1 { off += 1 }
        }
    }
    #expect(off <= g.near_boundary_pixels)
    for ch in g.constant_channels { #expect(planes[ch].allSatisfy { $0 == 128 }) }
    let stats = try channelStatistics(activation)
    #expect(stats.count == c)
    for ch in g.constant_channels { #expect(stats[ch].max == activation.scalars[ch]) }
}
