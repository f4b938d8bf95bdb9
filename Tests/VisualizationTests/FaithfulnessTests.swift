import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// The faithfulness metrics against their NumPy restatement of the papers with the model run
/// by Keras (tools/fixtures/make_faithfulness_fixtures.py → Tests/Fixtures/visualization/
/// faithfulness): deletion/insertion (RISE), average drop/increase (Grad-CAM++), ROAD.
private let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/visualization")

private struct Manifest: Decodable {
    let input, saliency: String
    let class_index, steps: Int
    let road_fractions: [Double]
    let road_noise: Double
    let deletion_curve, insertion_curve: [Double]
    let deletion_auc, insertion_auc, average_drop, increase_in_confidence, road_morf, road_lerf, road_combined: Double
}

private let manifest: Manifest = {
    let data = try! Data(contentsOf: root.appendingPathComponent("faithfulness/manifest.json"))
    return try! JSONDecoder().decode(Manifest.self, from: data)
}()

private let model: KerasModel = try! KerasModel.load(contentsOf: root.appendingPathComponent("cam_classifier.k3.h5"))

private func probe() throws -> FaithfulnessProbe {
    FaithfulnessProbe(
        image: try Tensor.readNPY(contentsOf: root.appendingPathComponent(manifest.input)), toInput: { $0 },
        scoreNode: model.network.outputNode, classIndex: manifest.class_index)
}

private func saliency() throws -> [Float] {
    try Tensor.readNPY(contentsOf: root.appendingPathComponent(manifest.saliency)).scalars
}

private func options(batchSize: Int = 16) -> FaithfulnessOptions {
    FaithfulnessOptions(
        steps: manifest.steps, batchSize: batchSize, roadFractions: manifest.road_fractions, roadNoise: manifest.road_noise, seed: 0)
}

/// Probabilities of a float32 model differ from Keras' in the 7th digit; 1e-4 is the bound.
private let tolerance = 1e-4

@Test(arguments: [1, 7, 16])
func deletionAndInsertionMatchNumPy(batchSize: Int) throws {
    let s = try model.network.faithfulness(
        of: try saliency(), probe: try probe(), metrics: [.deletion, .insertion], options: options(batchSize: batchSize))
    #expect(s.deletionCurve?.count == manifest.deletion_curve.count)
    for (a, b) in zip(s.deletionCurve ?? [], manifest.deletion_curve) { #expect(abs(a - b) <= tolerance) }
    for (a, b) in zip(s.insertionCurve ?? [], manifest.insertion_curve) { #expect(abs(a - b) <= tolerance) }
    #expect(abs(s.deletionAUC! - manifest.deletion_auc) <= tolerance, "deletion \(s.deletionAUC!) vs \(manifest.deletion_auc)")
    #expect(abs(s.insertionAUC! - manifest.insertion_auc) <= tolerance, "insertion \(s.insertionAUC!) vs \(manifest.insertion_auc)")
    #expect(s.averageDrop == nil && s.roadCombined == nil, "only the asked metrics")
}

@Test func averageDropAndIncreaseMatchNumPy() throws {
    let s = try model.network.faithfulness(of: try saliency(), probe: try probe(), metrics: [.drop], options: options())
    #expect(abs(s.averageDrop! - manifest.average_drop) <= 100 * tolerance, "\(s.averageDrop!) vs \(manifest.average_drop)")
    #expect(s.increaseInConfidence == manifest.increase_in_confidence)
}

@Test func roadMatchesNumPy() throws {
    let s = try model.network.faithfulness(of: try saliency(), probe: try probe(), metrics: [.road], options: options())
    #expect(abs(s.roadMoRF! - manifest.road_morf) <= tolerance, "MoRF \(s.roadMoRF!) vs \(manifest.road_morf)")
    #expect(abs(s.roadLeRF! - manifest.road_lerf) <= tolerance, "LeRF \(s.roadLeRF!) vs \(manifest.road_lerf)")
    #expect(abs(s.roadCombined! - manifest.road_combined) <= tolerance)
}

/// The imputation is the harmonic fill ROAD defines: without noise every removed pixel is the
/// weighted mean of its neighbours (weights renormalised at the border), kept pixels stay.
@Test func imputedPixelsAreTheWeightedMeanOfTheirNeighbours() throws {
    let x = try Tensor.readNPY(contentsOf: root.appendingPathComponent(manifest.input))
    let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
    let removing = (0..<(h * w)).map { p in (p / w - 12) * (p / w - 12) + (p % w - 20) * (p % w - 20) < 40 || p % 7 == 0 }
    var normals = SeededNormal(seed: 0)
    let filled = imputed(x, removing: removing, noise: 0, normals: &normals)
    var worst = 0.0
    for p in 0..<(h * w) {
        for k in 0..<c {
            let v = Double(filled.scalars[p * c + k])
            guard removing[p] else {
                #expect(v == Double(x.scalars[p * c + k]))
                continue
            }
            var sum = 0.0
            var weights = 0.0
            for n in ImputationSystem.neighbours {
                let (y, xx) = (p / w + n.dy, p % w + n.dx)
                guard y >= 0, y < h, xx >= 0, xx < w else { continue }
                sum += n.weight * Double(filled.scalars[(y * w + xx) * c + k])
                weights += n.weight
            }
            worst = max(worst, abs(v - sum / weights))
        }
    }
    #expect(worst < 1e-5, "largest deviation from the neighbour mean: \(worst)")
}

@Test func linearPercentileIsNumPys() {
    let v: [Float] = [3, 1, 4, 1, 5, 9, 2, 6]
    // numpy.percentile([3,1,4,1,5,9,2,6], [0, 10, 50, 90, 100]) = 1, 1, 3.5, 6.9, 9
    for (q, want) in [(0.0, 1.0), (10, 1.0), (50, 3.5), (90, 6.9), (100, 9.0)] {
        #expect(abs(linearPercentile(v, q) - want) < 1e-12, "q = \(q)")
    }
}

/// ROAD's systems at the bundled model's size: a Grad-CAM-like map (a 7×7 grid of values
/// upsampled) removes large smooth regions, the case where unpreconditioned conjugate
/// gradients needed 300–600 iterations. With the multigrid V-cycle the solve converges in a
/// few dozen, and its answer satisfies the system row by row.
@Test(arguments: [0.1, 0.5, 0.9])
func roadSystemsAt224ConvergeInFewIterations(fraction: Double) throws {
    let (h, w) = (224, 224)
    var random = SplitMix64(seed: 7)
    let coarse = (0..<49).map { _ in pow(Double(random.next() >> 11) / Double(1 << 53), 3) }
    let saliency: [Float] = (0..<(h * w)).map { p in
        let (fy, fx) = (Double(p / w) * 6 / Double(h - 1), Double(p % w) * 6 / Double(w - 1))
        let (y0, x0) = (min(5, Int(fy)), min(5, Int(fx)))
        let (ty, tx) = (fy - Double(y0), fx - Double(x0))
        let top = coarse[y0 * 7 + x0] * (1 - tx) + coarse[y0 * 7 + x0 + 1] * tx
        let bottom = coarse[(y0 + 1) * 7 + x0] * (1 - tx) + coarse[(y0 + 1) * 7 + x0 + 1] * tx
        return Float(top * (1 - ty) + bottom * ty)
    }
    let threshold = linearPercentile(saliency, 100 * (1 - fraction))
    let unknown = saliency.indices.filter { Double(saliency[$0]) >= threshold }
    var slot = [Int](repeating: -1, count: h * w)
    for (i, p) in unknown.enumerated() { slot[p] = i }
    let system = ImputationSystem(unknown: unknown, slot: slot, width: w, height: h)
    let image = (0..<(h * w)).map { _ in Float(Double(random.next() >> 11) / Double(1 << 53)) }
    let b = system.rightHandSide { image[$0] }
    let (x, iterations) = system.solveCounting(b)
    #expect(iterations <= 30, "\(unknown.count) unknowns took \(iterations) iterations")
    var mx = [Double](repeating: 0, count: x.count)
    x.withUnsafeBufferPointer { xb in mx.withUnsafeMutableBufferPointer { system.matrix.multiply(xb, into: $0) } }
    let worst = zip(mx, b).map { abs($0 - $1) }.max() ?? 0
    #expect(worst < 1e-6, "largest row residual \(worst)")
}
