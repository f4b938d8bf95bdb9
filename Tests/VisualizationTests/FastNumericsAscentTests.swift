import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// The book's convnet (16-channel 3×3 convolutions, where Winograd fits), loaded once for the
/// fast-numerics suites.
let bookConvnetSession: ModelSession = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/keras/book_convnet.k3.h5")
    return try! ModelSession(keras: try! KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
}()

/// A book filter ascent with fast numerics (Winograd for the 16-channel 3×3
/// convolutions where the CPU has it) draws the exact ascent's picture: the first
/// step's change within 1e-4 of its range, and the 40-step change (final − start)
/// correlated ≥ 0.99 although 40 steps of float32 rounding already move it apart.
@Suite struct FastNumericsAscentTests {
    var session: ModelSession { bookConvnetSession }

    /// What `steps` book steps change in the start image for filters 0..<4 of conv2d_4
    /// (16 → 16 channels, as conv2d_3 it feeds from), flattened.
    func change(steps: Int, _ numerics: Numerics) throws -> [Float] {
        var request = FilterRequest(layer: "conv2d_4", count: 4)
        request.steps = steps
        request.numerics = numerics
        let start = Network.bookStartImages(count: 1, size: 48, channels: 3, seed: 0)
        let images = try session.renderFilters(request, startImage: start).images
        let one = start.scalars.count
        return images.scalars.enumerated().map { $1 - start.scalars[$0 % one] }
    }

    @Test func requestCarriesFastNumericsInItsIdentityOnly() throws {
        var request = FilterRequest(layer: "conv2d_4", count: 4)
        request.numerics = .exact
        let exact = try request.canonical(for: session)
        #expect(exact.numerics == nil, "exact is the default: the canonical request leaves it out")
        request.numerics = .fast
        let fast = try request.canonical(for: session)
        #expect(fast.numerics == .fast)
        #expect(fast.contentAddress(model: "m", image: "i") != exact.contentAddress(model: "m", image: "i"))
    }

    @Test func firstStepMatchesExact() throws {
        let exact = try change(steps: 1, .exact)
        let fast = try change(steps: 1, .fast)
        let range = (exact.max() ?? 0) - (exact.min() ?? 0)
        let err = zip(exact, fast).map { abs($0 - $1) }.max() ?? 0
        #expect(range > 0)
        #expect(err <= 1e-4 * range, "step 1: max difference \(err), range of the change \(range)")
    }

    @Test func fortyStepsCorrelate() throws {
        let exact = try change(steps: 40, .exact)
        let fast = try change(steps: 40, .fast)
        let r = correlation(exact, fast)
        #expect(r >= 0.99, "40 steps: correlation \(r)")
    }

    func correlation(_ a: [Float], _ b: [Float]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0.0) { $0 + Double($1) } / n
        let mb = b.reduce(0.0) { $0 + Double($1) } / n
        var (sab, saa, sbb) = (0.0, 0.0, 0.0)
        for (x, y) in zip(a, b) {
            let (dx, dy) = (Double(x) - ma, Double(y) - mb)
            sab += dx * dy
            saa += dx * dx
            sbb += dy * dy
        }
        return sab / max((saa * sbb).squareRoot(), 1e-30)
    }
}
