import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// A heatmap asked for with fast numerics (Winograd for the 16-channel 3×3 convolutions of
/// the book convnet where the CPU has it) is the exact heatmap to float rounding, has its
/// own address, and says so in its facts; exact requests keep the address they had.
@Suite struct FastNumericsHeatmapTests {
    let session: ModelSession = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/keras/book_convnet.k3.h5")
        return try! ModelSession(keras: try! KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
    }()

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
}
