import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// A filter request's memory estimate is read from the layer graph before it runs: it
/// counts what the engine keeps for the backward pass, grows with count and size, and a
/// request beyond the limit is refused naming what fits.
private let session: ModelSession = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try! ModelSession(profile: ModelProfile.read(contentsOf: root.appendingPathComponent("models/efficientnet_lite0.json")))
}()

private func request(_ layer: String, count: Int, size: Int, method: FilterMethod) throws -> FilterRequest {
    var r = FilterRequest(layer: layer, count: count)
    r.size = size
    r.method = method
    return try r.canonical(for: session)
}

@Suite struct MemoryEstimateTests {
    /// The footprint's kept outputs are exactly those a forward pass for the backward pass
    /// holds (with the fused convolution → BN → ReLU steps that keep nothing inside).
    @Test(arguments: ["stem_activation", "top_activation"])
    func theFootprintCountsWhatTheTraceKeeps(layer: String) throws {
        let r = try request(layer, count: 1, size: 64, method: .book)
        let network = try session.filterNetwork(height: 64, width: 64)
        let node = try session.filterTarget(layer: r.layer, method: .book).node
        let x = Tensor(shape: [1, 64, 64, 3], scalars: [Float](repeating: 0.1, count: 64 * 64 * 3))
        let trace = try network.forward(x, stopAfter: node, backwardTo: 0)
        let footprint = try network.ascentFootprint(layerNode: node, height: 64, width: 64)
        #expect(footprint.keptElements == trace.outputs.values.reduce(0) { $0 + $1.sampleCount })
        #expect(footprint.targetElements == trace[node]!.sampleCount)
        #expect(footprint.largestElements >= footprint.targetElements)
    }

    @Test func theEstimateGrowsWithCountAndTheSquareOfTheSize() throws {
        for method in [FilterMethod.book, .lucid] {
            let small = try session.memoryEstimate(request("top_activation", count: 16, size: 224, method: method))
            let four = try session.memoryEstimate(request("top_activation", count: 64, size: 224, method: method))
            let large = try session.memoryEstimate(request("top_activation", count: 16, size: 448, method: method))
            #expect(four.perImage == small.perImage && four.images == 4 * small.images)
            let ratio = Double(large.perImage) / Double(small.perImage)
            #expect(ratio > 3.9 && ratio < 4.1, "\(method): \(ratio)")
        }
    }

    @Test func aRequestBeyondTheLimitIsRefusedNamingWhatFits() throws {
        let r = try request("top_activation", count: 16, size: 224, method: .lucid)
        let estimate = try session.memoryEstimate(r)
        // A limit that holds five images.
        let limit = estimate.shared + 5 * estimate.perImage + 1
        try session.checkCost(r, limits: RenderLimits(maxRequestBytes: estimate.bytes))
        #expect {
            try session.checkCost(r, limits: RenderLimits(maxRequestBytes: limit))
        } throws: { error in
            guard case RequestError.tooCostly(let detail) = error else { return false }
            return detail.contains("count (5 filters fit at this size)") && detail.contains("compute.max_request_bytes")
                && detail.contains("size (size=") && detail.contains(MemoryEstimate.describe(estimate.bytes))
        }
    }

    /// The crash request of issue 26 needs hundreds of GiB: it is refused under any limit a machine has.
    @Test func theKillerGridIsEstimatedFarBeyondAnyMachine() throws {
        let r = try request("top_activation", count: 256, size: 1024, method: .lucid)
        #expect(try session.memoryEstimate(r).bytes > 100 << 30)
    }
}
