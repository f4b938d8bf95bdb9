import Foundation
import Testing

@testable import Engine
@testable import KerasFormat

/// Forward passes on the inference plan (BatchNormalization folded into the
/// convolution before it, activations fused as oneDNN post-ops) against Keras'
/// numbers at the same tolerance as the unfused checks in `FixtureTests`, and
/// against the unfused network on the bundled model.
extension SerialTests {
    @Suite struct InferencePlanParityTests {
        @Test(arguments: Fixtures.ok)
        func fusedPassesMatchKeras(_ fixture: FixtureCase) throws {
            let model = try KerasModel.load(contentsOf: fixture.modelURL)
            let network = model.network
            let input = try Tensor.readNPY(contentsOf: fixture.url(try #require(fixture.input)))

            let expected = try Tensor.readNPY(contentsOf: fixture.url(try #require(fixture.output)))
            let out = try network.predict(input)
            let c = closeEnough(out, expected)
            #expect(c.ok, "\(fixture.name) fused output: max diff \(c.diff) > \(c.bound)")

            // Each layer asked for, by stopping there and by keeping it on the way to the output.
            for (layer, file) in (fixture.activations ?? [:]).sorted(by: { $0.key < $1.key }) {
                let id = try network.node(named: layer)
                let keras = try Tensor.readNPY(contentsOf: fixture.url(file))
                let stopped = try #require(try network.forward(input, stopAfter: id)[id])
                let s = closeEnough(stopped, keras)
                #expect(s.ok, "\(fixture.name) stop at \(layer): max diff \(s.diff) > \(s.bound)")
                let kept = try #require(try network.forward(input, keep: [id])[id])
                let k = closeEnough(kept, keras)
                #expect(k.ok, "\(fixture.name) keep \(layer): max diff \(k.diff) > \(k.bound)")
            }

            // Gradients at intermediate layers from a trace that keeps only the backward region.
            guard let g = fixture.gradients else { return }
            let from = g.pre_softmax ? try #require(model.logitsNode) : network.outputNode
            for (wrt, file) in g.wrt.sorted(by: { $0.key < $1.key }) where wrt != "input" {
                let to = try network.node(named: wrt)
                let trace = try network.forward(input, stopAfter: from, backwardTo: to)
                let y = try #require(trace[from])
                var seed = Tensor(zeros: y.shape)
                for b in 0..<y.batch { seed.scalars[b * y.sampleCount + g.output_index] = 1 }
                let ours = try network.backward(from: from, seed: seed, to: to, trace: trace)
                let keras = try Tensor.readNPY(contentsOf: fixture.url(file))
                let c = closeEnough(ours, keras)
                #expect(c.ok, "\(fixture.name) gradient w.r.t. \(wrt) (backward region only): max diff \(c.diff) > \(c.bound)")
            }
        }

        /// EfficientNet-Lite0: 49 convolution + BatchNormalization (+ ReLU6) chains.
        @Test func bundledModelFusedEqualsUnfused() throws {
            let url = fixtureDirectory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("models/efficientnet_lite0.h5")
            let model = try KerasModel.load(contentsOf: url)
            let network = model.network
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            let input = Tensor(
                shape: [1, 224, 224, 3],
                scalars: (0..<(224 * 224 * 3)).map { _ in
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    return Float(state >> 40) / Float(1 << 24) * 2 - 1
                })
            let logits = try #require(model.logitsNode)
            // Every convolution is followed by its BatchNormalization: all 49 chains fuse
            // (with their ReLU6, padding, dropout and residual add where they have one).
            let plan = network.inferencePlan(last: logits, materialised: [logits])
            let fused = plan.steps.filter {
                if case .fused = $0.operation { return true }
                return false
            }
            #expect(fused.count == 49, "\(fused.count) fused steps of \(plan.steps.count)")
            #expect(plan.steps.count <= 60, "\(plan.steps.count) steps for \(network.nodes.count) nodes")
            let unfused = try network.forward(input, stopAfter: logits, keepAll: true)
            /// ≤ 1e-4 relative to the largest magnitude.
            func expectClose(_ a: Tensor?, _ b: Tensor?, _ what: String) throws {
                let a = try #require(a)
                let b = try #require(b)
                let diff = a.maxAbsDifference(b)
                #expect(diff <= 1e-4 * b.maxAbs, "\(what): max diff \(diff), max \(b.maxAbs)")
            }
            try expectClose(try network.forward(input, stopAfter: logits)[logits], unfused[logits], "logits")
            for name in ["stem_activation", "block3a_project_bn", "block5c_add", "top_activation"] {
                let id = try network.node(named: name)
                try expectClose(try network.forward(input, stopAfter: id)[id], unfused[id], name)
            }
            // Grad-CAM's trace: the top layer and everything above it kept, the rest fused.
            let top = try network.node(named: "top_activation")
            let trace = try network.forward(input, stopAfter: logits, backwardTo: top)
            try expectClose(trace[top], unfused[top], "top_activation in a backward trace")
            var seed = Tensor(zeros: unfused[logits]!.shape)
            seed.scalars[285] = 1
            try expectClose(
                try network.backward(from: logits, seed: seed, to: top, trace: trace),
                try network.backward(from: logits, seed: seed, to: top, trace: unfused), "gradient at top_activation")
        }
    }
}
