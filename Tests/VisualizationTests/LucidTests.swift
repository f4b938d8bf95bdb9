import Engine
import Foundation
import Imaging
import KerasFormat
import Testing

@testable import Visualization

/// Tests of the lucid feature visualisation. References: NumPy's FFT and lucid's
/// parameterisation re-stated in TF 2 (Tests/Fixtures/visualization/lucid, made by
/// tools/fixtures/make_lucid_fixtures.py); everything else by exact identities.
private let visualizationFixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/visualization")
private let lucidFixtures = visualizationFixtures.appendingPathComponent("lucid")

private func lucidNPY(_ name: String) throws -> Tensor { try Tensor.readNPY(contentsOf: lucidFixtures.appendingPathComponent(name)) }

private struct LucidManifest: Decodable {
    struct FFT: Decodable {
        let height: Int
        let width: Int
        let image: String
        let rfft2: String
        let coefficients: String
        let irfft2: String
    }
    struct Img: Decodable {
        let height: Int
        let width: Int
        let coefficients: String
        let rgb: String
        let upstream: String
        let gradient: String
    }
    let fft: [FFT]
    let image: [Img]
    let max_norm_svd_sqrt: Double
}

private let lucidManifest: LucidManifest = {
    let data = try! Data(contentsOf: lucidFixtures.appendingPathComponent("manifest.json"))
    return try! JSONDecoder().decode(LucidManifest.self, from: data)
}()

private func randomVector(_ n: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) }
}

private func dot(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
}

private func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

// MARK: - FFT

@Test func lucidFFTMatchesNumPy() throws {
    #expect(lucidManifest.fft.count >= 3)
    for f in lucidManifest.fft {
        let dft = LucidDFT2D(height: f.height, width: f.width)
        let image = try lucidNPY(f.image).scalars
        let spectrum = try lucidNPY(f.rfft2).scalars  // (2, h, fw)
        let plane = f.height * dft.frequencyWidth
        #expect(spectrum.count == 2 * plane)
        let (re, im) = dft.forward(image)
        #expect(maxAbsDiff(re, Array(spectrum[0..<plane])) < 1e-4, "rfft2 re \(f.height)×\(f.width)")
        #expect(maxAbsDiff(im, Array(spectrum[plane...])) < 1e-4, "rfft2 im \(f.height)×\(f.width)")
        // irfft2 of arbitrary (non-Hermitian) coefficients: imaginary parts of the
        // kx = 0 and Nyquist columns must be ignored exactly as NumPy does.
        let coef = try lucidNPY(f.coefficients).scalars
        let inv = dft.inverse(re: Array(coef[0..<plane]), im: Array(coef[plane...]))
        #expect(maxAbsDiff(inv, try lucidNPY(f.irfft2).scalars) < 1e-5, "irfft2 \(f.height)×\(f.width)")
    }
}

@Test(arguments: [(8, 10), (7, 9), (16, 16), (5, 2)])
func lucidFFTInverseUndoesForward(size: (Int, Int)) {
    let dft = LucidDFT2D(height: size.0, width: size.1)
    let image = randomVector(size.0 * size.1, seed: 11)
    let (re, im) = dft.forward(image)
    let back = dft.inverse(re: re, im: im)
    #expect(maxAbsDiff(back, image) < 1e-5)
}

@Test(arguments: [(8, 10), (7, 9), (16, 16), (6, 5)])
func lucidFFTAdjointIsTheTranspose(size: (Int, Int)) {
    let dft = LucidDFT2D(height: size.0, width: size.1)
    let plane = size.0 * dft.frequencyWidth
    let re = randomVector(plane, seed: 1)
    let im = randomVector(plane, seed: 2)
    let g = randomVector(size.0 * size.1, seed: 3)
    let lhs = dot(dft.inverse(re: re, im: im), g)
    let (gr, gi) = dft.inverseAdjoint(g)
    let rhs = dot(re, gr) + dot(im, gi)
    #expect(abs(lhs - rhs) <= 1e-5 * max(1, abs(lhs)), "⟨A x, g⟩ = \(lhs), ⟨x, Aᵀ g⟩ = \(rhs)")
    // And the adjoint is not trivially zero.
    #expect(gr.contains { $0 != 0 } && gi.contains { $0 != 0 })
}

@Test func lucidFrequenciesAreLucids() {
    // rfft2d_freqs(4, 6): fy = fftfreq(4) = [0, .25, -.5, -.25], fx = [0, 1/6, 2/6, 3/6].
    let f = LucidDFT2D(height: 4, width: 6).frequencies()
    #expect(f.count == 4 * 4)
    #expect(f[0] == 0)
    #expect(abs(f[1] - 1.0 / 6) < 1e-7)
    #expect(abs(f[2 * 4 + 0] - 0.5) < 1e-7)
    #expect(abs(f[3 * 4 + 3] - Float((0.0625 + 0.25).squareRoot())) < 1e-6)
}

// MARK: - Colour and parameterisation

@Test func lucidColourDecorrelationRoundTrip() {
    let t = randomVector(3 * 50, seed: 5)
    let rgb = lucidDecorrelate(t)
    #expect(maxAbsDiff(rgb, t) > 0.1)  // it does something
    #expect(maxAbsDiff(lucidCorrelate(rgb), t) < 1e-5)
    // Adjoint = transpose.
    let g = randomVector(3 * 50, seed: 6)
    #expect(abs(dot(rgb, g) - dot(t, lucidDecorrelateAdjoint(g))) < 1e-5)
    // Normalised by the largest column norm: that column has norm 1, lucid's constant is 0.4620.
    let m = lucidColorMatrix
    let norms = (0..<3).map { j in (0..<3).reduce(Float(0)) { $0 + m[$1 * 3 + j] * m[$1 * 3 + j] }.squareRoot() }
    #expect(abs(norms.max()! - 1) < 1e-6)
    #expect(abs(Double(lucidColorCorrelationSVDSqrt[0][0] / m[0]) - lucidManifest.max_norm_svd_sqrt) < 1e-6)
}

@Test func lucidFourierImageMatchesTensorFlow() throws {
    #expect(lucidManifest.image.count >= 2)
    for c in lucidManifest.image {
        let p = LucidFourierImage(height: c.height, width: c.width)
        let coef = try lucidNPY(c.coefficients).scalars
        #expect(coef.count == p.coefficientCount)
        let rgb = p.rgb(coef)
        let reference = try lucidNPY(c.rgb).scalars
        #expect(maxAbsDiff(rgb, reference) < 2e-5, "rgb \(c.height)×\(c.width)")
        #expect(rgb.contains { abs($0 - 0.5) > 0.05 })  // not a flat grey
        let grad = p.gradient(rgb: rgb, rgbGradient: try lucidNPY(c.upstream).scalars)
        let tf = try lucidNPY(c.gradient).scalars
        let scale = tf.map { abs($0) }.max()!
        #expect(maxAbsDiff(grad, tf) <= 1e-4 * scale, "gradient \(c.height)×\(c.width): max |Δ| \(maxAbsDiff(grad, tf)) of \(scale)")
    }
}

@Test func lucidInputMapIsTheModelsPreprocessing() throws {
    let pixels: [UInt8] = [0, 17, 255, 128, 64, 3, 200, 100, 50, 9, 250, 77]
    let image = try Image(width: 2, height: 2, channels: 3, pixels: pixels)
    let modes: [Preprocessing] = [.caffe, .tf, .torch, .scale, .none, .affine(scale: 0.0078125, offset: -0.9921875)]
    for mode in modes {
        let expected = try image.preprocessed(mode).values
        let map = LucidInputMap(preprocessing: mode)
        for p in 0..<4 {
            for k in 0..<3 {
                let x = Float(pixels[p * 3 + map.source(k)]) / 255
                let ours = x * map.scale[k] + map.offset[k]
                #expect(abs(ours - expected[p * 3 + k]) <= 1e-4 * max(1, abs(expected[p * 3 + k])), "\(mode) pixel \(p) channel \(k)")
            }
        }
    }
}

// MARK: - Transforms

@Test(arguments: [LucidTransforms.PadMode.constant(0.5), .reflect])
func lucidWarpAdjointIsTheTranspose(mode: LucidTransforms.PadMode) {
    var t = LucidTransforms.standard
    t.padMode = mode
    var rng = SplitMix64(seed: 42)
    for trial in 0..<6 {
        let (h, w, oh, ow) = [(20, 24, 20, 24), (17, 13, 16, 16), (12, 12, 15, 9)][trial % 3]
        let warp = t.draw(imageHeight: h, imageWidth: w, outputHeight: oh, outputWidth: ow, using: &rng)
        let x = randomVector(h * w * 3, seed: UInt64(trial) + 100)
        let g = randomVector(oh * ow * 3, seed: UInt64(trial) + 200)
        // Constant padding makes the warp affine: take its linear part.
        let zero = warp.apply([Float](repeating: 0, count: h * w * 3), channels: 3)
        let ax = zip(warp.apply(x, channels: 3), zero).map { $0 - $1 }
        let lhs = dot(ax, g)
        let rhs = dot(x, warp.adjoint(g, channels: 3))
        #expect(abs(lhs - rhs) <= 1e-5 * max(1, abs(lhs)), "trial \(trial): \(lhs) vs \(rhs)")
        #expect(abs(lhs) > 1e-3)
    }
}

@Test func lucidTransformsDoWhatTheySay() {
    var rng = SplitMix64(seed: 1)
    let x = randomVector(10 * 12 * 3, seed: 9)
    // No transform, same size: the identity.
    let id = LucidTransforms.none.draw(imageHeight: 10, imageWidth: 12, outputHeight: 10, outputWidth: 12, using: &rng)
    #expect(id.apply(x, channels: 3) == x)
    // Only padding + centre crop to a larger output: the image sits in the middle, pad value around it.
    var padOnly = LucidTransforms.none
    padOnly.pad = 2
    padOnly.padMode = .constant(0.25)
    let p = padOnly.draw(imageHeight: 10, imageWidth: 12, outputHeight: 14, outputWidth: 16, using: &rng)
    let out = p.apply(x, channels: 3)
    #expect(out[0] == 0.25)
    #expect(out[((2 * 16) + 2) * 3 + 1] == x[1])
    // Jitter only: an integer shift in 0...j per axis, ±j/2 around the centre.
    var jitter = LucidTransforms.none
    jitter.jitter1 = 4
    var shifts = Set<[Double]>()
    for _ in 0..<100 {
        let w = jitter.draw(imageHeight: 10, imageWidth: 12, outputHeight: 10, outputWidth: 12, using: &rng)
        #expect(w.matrix[0] == 1 && w.matrix[1] == 0 && w.matrix[3] == 0 && w.matrix[4] == 1)
        shifts.insert([w.matrix[2], w.matrix[5]])
    }
    #expect(shifts.count == 25)
    #expect(shifts.allSatisfy { abs($0[0]) <= 2 && abs($0[1]) <= 2 && $0[0] == $0[0].rounded() })
    // Reflect padding mirrors without repeating the edge.
    let shift = LucidWarp(imageHeight: 1, imageWidth: 4, outputHeight: 1, outputWidth: 4, matrix: [1, 0, 0, 0, 1, -2], padMode: .reflect)
    #expect(shift.apply([10, 20, 30, 40], channels: 1) == [30, 20, 10, 20])
}

// MARK: - End to end on the small ascent model

private func ascentModel() throws -> (KerasModel, Int) {
    let model = try KerasModel.load(contentsOf: visualizationFixtures.appendingPathComponent("ascent_stack.k3.h5"))
    return (model, try model.network.node(named: "conv3"))
}

@Test func lucidObjectiveRisesOnConv3() throws {
    let (model, conv3) = try ascentModel()
    var p = LucidParameters(steps: 40, size: (32, 32), learningRate: 0.2, seed: 7)
    p.transforms.pad = 4
    var calls = 0
    let r = try model.network.lucidVisualization(
        layerNode: conv3, objectives: [.channel(1), .channel(6), .neuron(1)],
        inputMap: .uniform(scale: 255), parameters: p,
        progress: {
            calls += 1
            return $0.losses.count == 3
        })
    #expect(calls == 40)
    #expect(r.images.shape == [3, 32, 32, 3])
    #expect(r.images.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
    for i in 0..<3 {
        let first = r.objectiveHistory[0][i]
        let last = r.objectiveHistory.suffix(5).map { $0[i] }.reduce(0, +) / 5
        #expect(last > first + 1 && last > 2 * abs(first), "image \(i): objective \(first) → \(last)")
    }
    // The final images evaluated without transforms still score far above the start.
    let scores = try evaluate(model.network, conv3, r.images, objectives: [.channel(1), .channel(6), .neuron(1)])
    for i in 0..<3 { #expect(scores[i] > r.objectiveHistory[0][i] + 1) }
}

private func evaluate(_ net: Network, _ node: Int, _ rgb: Tensor, objectives: [LucidObjective]) throws -> [Float] {
    let input = Tensor(shape: rgb.shape, scalars: rgb.scalars.map { $0 * 255 })
    let out = try net.forward(input, stopAfter: node).outputs[node]!
    return try lucidSeedGradient(out, objectives: objectives, layer: "conv3").1
}

@Test func lucidBatchedEqualsSingleRuns() throws {
    let (model, conv3) = try ascentModel()
    let p = LucidParameters(steps: 6, size: (24, 20), seed: 3)
    let objectives: [LucidObjective] = [.channel(1), .channel(6), .channel(13)]
    let batched = try model.network.lucidVisualization(
        layerNode: conv3, objectives: objectives,
        inputMap: .uniform(scale: 255), parameters: p)
    for (i, o) in objectives.enumerated() {
        let single = try model.network.lucidVisualization(
            layerNode: conv3, objectives: [o],
            inputMap: .uniform(scale: 255), parameters: p)
        let diff = single.images.maxAbsDifference(batched.images.sample(i))
        #expect(diff < 1e-4, "\(o): max |Δ| = \(diff)")
        for step in 0..<p.steps {
            let (a, b) = (single.objectiveHistory[step][0], batched.objectiveHistory[step][i])
            #expect(abs(a - b) <= 1e-4 * max(1, abs(a)))
        }
    }
    // Different filters give different pictures.
    #expect(batched.images.sample(0).maxAbsDifference(batched.images.sample(1)) > 1e-3)
}

@Test func lucidCanBeCancelled() throws {
    let (model, conv3) = try ascentModel()
    var calls = 0
    #expect(throws: VisualizationError.cancelled) {
        _ = try model.network.lucidVisualization(
            layerNode: conv3, objectives: [.channel(0)], inputMap: .uniform(scale: 255),
            parameters: LucidParameters(steps: 50, size: (16, 16)),
            progress: {
                calls += 1
                return $0.step < 3
            })
    }
    #expect(calls == 3)
}

@Test func lucidRejectsBadRequests() throws {
    let (model, conv3) = try ascentModel()
    let p = LucidParameters(steps: 2, size: (16, 16))
    #expect(throws: VisualizationError.self) {
        _ = try model.network.lucidVisualization(
            layerNode: conv3, objectives: [.channel(16)], inputMap: .uniform(scale: 255), parameters: p)
    }
    #expect(throws: VisualizationError.self) {
        _ = try model.network.lucidVisualization(layerNode: conv3, objectives: [.unit(0)], inputMap: .uniform(scale: 255), parameters: p)
    }
    // Variable-size model without a size.
    #expect(throws: VisualizationError.self) {
        _ = try model.network.lucidVisualization(
            layerNode: conv3, objectives: [.channel(0)], inputMap: .uniform(scale: 255),
            parameters: LucidParameters(steps: 2))
    }
}

@Test func lucidClassUnitOnLogitsRises() throws {
    let model = try KerasModel.load(contentsOf: visualizationFixtures.appendingPathComponent("cam_classifier.k3.h5"))
    let logits = try #require(model.logitsNode)
    // Without transforms (a 32-pixel image jittered by 12 is mostly noise): the
    // Fourier/colour/sigmoid gradient chain alone must drive the logit up.
    let p = LucidParameters(steps: 30, learningRate: 0.1, transforms: .none, seed: 5)
    let r = try model.network.lucidVisualization(
        layerNode: logits, objectives: [.unit(7), .unit(2)],
        inputMap: .uniform(scale: 1), parameters: p)
    #expect(r.images.shape == [2, 32, 32, 3])
    for i in 0..<2 {
        let first = r.objectiveHistory[0][i]
        let last = r.objectiveHistory.suffix(5).map { $0[i] }.reduce(0, +) / 5
        #expect(last > first + 3, "unit \(i): logit \(first) → \(last)")
    }
}

@Test func lucidImagesConvertTo8Bit() throws {
    let t = Tensor(shape: [1, 1, 2, 3], scalars: [0, 0.5, 1, 0.2, 0.999, 0.001])
    let images = try lucidImages(t)
    #expect(images.count == 1)
    #expect(images[0].pixels == [0, 128, 255, 51, 255, 0])
}
