import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// A heatmap, prediction or activation grid asked for with fast numerics (Winograd for the
/// 16-channel 3×3 convolutions of the book convnet where the CPU has it) is the exact one to
/// float rounding, has its own address, and says so in its facts; exact requests keep the
/// address they had.
@Suite struct FastNumericsRequestTests {
    var session: ModelSession { bookConvnetSession }

    var input: RenderInput {
        let shape = [1] + session.network.inputShape.map { $0 == -1 ? 64 : $0 }
        var g = SplitMix64(seed: 11)
        return .tensor(Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float(g.nextUnit()) }))
    }

    func map(_ method: CAMMethod, _ numerics: Numerics) throws -> (heatmap: [Float], numericsFact: String?) {
        var request = HeatmapRequest()
        request.method = method
        request.numerics = numerics
        request.format = .json
        let rendered = try session.render(request, input: input)
        let json = try #require(try JSONSerialization.jsonObject(with: rendered.body) as? [String: Any])
        let heatmap = try #require(json["heatmap"] as? [Double]).map(Float.init)
        return (heatmap, rendered[fact: "Numerics"])
    }

    @Test func exactStaysTheDefaultAddressAndFastHasItsOwn() throws {
        let plain = try HeatmapRequest().canonical(for: session)
        var request = HeatmapRequest()
        request.numerics = .exact
        let exact = try request.canonical(for: session)
        #expect(exact.numerics == nil && exact == plain)
        #expect(exact.contentAddress(model: "m", image: "i") == plain.contentAddress(model: "m", image: "i"))
        #expect(!String(decoding: exact.canonicalJSON, as: UTF8.self).contains("numerics"))
        request.numerics = .fast
        let fast = try request.canonical(for: session)
        #expect(fast.numerics == .fast)
        #expect(fast.contentAddress(model: "m", image: "i") != exact.contentAddress(model: "m", image: "i"))
    }

    /// Maps are in [0, 1]; fast ones within 1e-4 of the exact ones (Grad-CAM at the default
    /// layer: forward through the Winograd layers, backward from the head; saliency:
    /// backward through them to the input too).
    @Test(arguments: [CAMMethod.gradcam, .saliency])
    func fastMapIsTheExactMapToRounding(_ method: CAMMethod) throws {
        let exact = try map(method, .exact)
        let fast = try map(method, .fast)
        #expect(exact.numericsFact == nil)
        #expect(fast.numericsFact == "fast")
        #expect(exact.heatmap.count == fast.heatmap.count && !exact.heatmap.isEmpty)
        #expect((exact.heatmap.max() ?? 0) > 0)
        let err = zip(exact.heatmap, fast.heatmap).map { abs($0 - $1) }.max() ?? 1
        #expect(err <= 1e-4, "\(method): max difference \(err)")
    }

    @Test func fastPredictionsAreTheExactOnesToRounding() throws {
        let exact = try session.predictions(PredictRequest(top: 3, output: true), input: input)
        let fast = try session.predictions(PredictRequest(top: 3, output: true, numerics: .fast), input: input)
        let a = try #require(exact.output)
        let b = try #require(fast.output)
        let scale = a.map(abs).max() ?? 0
        #expect(scale > 0 && a.count == b.count)
        let err = zip(a, b).map { abs($0 - $1) }.max() ?? 1
        #expect(err <= 1e-4 * scale, "outputs differ by \(err) (largest \(scale))")
        #expect(try PredictRequest(numerics: .exact).canonical(for: session) == PredictRequest())
    }

    @Test func fastActivationsAreTheExactOnesToRounding() throws {
        func activations(_ numerics: Numerics) throws -> (values: [Float], numerics: String?) {
            var request = ActivationsRequest(layer: "conv2d_4")
            request.format = .npy
            request.numerics = numerics
            let rendered = try session.render(request, input: input)
            let t = try Tensor.decodeNPY(rendered.body)
            return (t.scalars, rendered[fact: "Numerics"])
        }
        let exact = try activations(.exact)
        let fast = try activations(.fast)
        #expect(exact.numerics == nil && fast.numerics == "fast")
        let range = (exact.values.max() ?? 0) - (exact.values.min() ?? 0)
        let err = zip(exact.values, fast.values).map { abs($0 - $1) }.max() ?? 1
        #expect(range > 0 && err <= 1e-4 * range, "activations differ by \(err) (range \(range))")
    }
}
