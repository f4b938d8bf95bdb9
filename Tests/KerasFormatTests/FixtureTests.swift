import Engine
import Foundation
import Testing
@testable import KerasFormat

/// Every committed Keras fixture (three file formats per case) against the
/// numbers Keras computed: output, per-layer activations, input gradients.
@Suite(.serialized)
struct FixtureTests {
    @Test func manifestIsPresent() throws {
        let all = try Fixtures.load()
        #expect(all.contains { $0.kind == "ok" })
        #expect(all.contains { $0.kind == "bad" })
        for format in KerasFileFormat.allCases {
            #expect(all.contains { $0.kind == "ok" && $0.format == format.rawValue }, "no fixture in format \(format.rawValue)")
        }
    }

    @Test(arguments: Fixtures.ok)
    func loadsAndMatchesKeras(_ fixture: FixtureCase) throws {
        let model = try KerasModel.load(contentsOf: fixture.modelURL)
        #expect(model.format.rawValue == fixture.format)
        let network = model.network

        // Every layer class the manifest lists is in the summary.
        let classes = Set(model.layers.map(\.className))
        for cls in fixture.layers ?? [] {
            #expect(classes.contains(cls), "\(cls) missing from the summary of \(fixture.name)")
        }

        let input = try Tensor.readNPY(contentsOf: fixture.url(try #require(fixture.input)))
        let trace = try network.forward(input, keepAll: true)

        let expected = try Tensor.readNPY(contentsOf: fixture.url(try #require(fixture.output)))
        let out = try #require(trace[network.outputNode])
        let c = closeEnough(out, expected)
        #expect(c.ok, "\(fixture.name) output: shape \(out.shape) vs \(expected.shape), max diff \(c.diff) > \(c.bound)")

        for (layer, file) in (fixture.activations ?? [:]).sorted(by: { $0.key < $1.key }) {
            let id = try network.node(named: layer)
            let ours = try #require(trace[id])
            let keras = try Tensor.readNPY(contentsOf: fixture.url(file))
            let c = closeEnough(ours, keras)
            #expect(c.ok, "\(fixture.name) activation \(layer): shape \(ours.shape) vs \(keras.shape), max diff \(c.diff) > \(c.bound)")
        }

        if let g = fixture.gradients {
            let from: Int
            if g.pre_softmax {
                from = try #require(model.logitsNode, "\(fixture.name): the manifest expects a softmax head")
            } else {
                from = network.outputNode
                #expect(model.logitsNode == nil, "\(fixture.name): logitsNode set without a softmax head")
            }
            let y = try #require(trace[from])
            var seed = Tensor(zeros: y.shape)
            let perSample = y.sampleCount
            for b in 0..<y.batch { seed.scalars[b * perSample + g.output_index] = 1 }
            for (wrt, file) in g.wrt.sorted(by: { $0.key < $1.key }) {
                let to = wrt == "input" ? 0 : try network.node(named: wrt)
                let ours = try network.backward(from: from, seed: seed, to: to, trace: trace)
                let keras = try Tensor.readNPY(contentsOf: fixture.url(file))
                let c = closeEnough(ours, keras)
                #expect(c.ok, "\(fixture.name) gradient w.r.t. \(wrt): shape \(ours.shape) vs \(keras.shape), max diff \(c.diff) > \(c.bound)")
            }
        }
    }

    @Test(arguments: Fixtures.bad)
    func badFileFailsClearly(_ fixture: FixtureCase) throws {
        do {
            let model = try KerasModel.load(contentsOf: fixture.modelURL)
            Issue.record("\(fixture.name) loaded (\(model.layers.count) layers) but must fail")
        } catch {
            let text = "\(error)"
            let wanted = (fixture.expect_error_contains.map { [$0] } ?? []) + (fixture.expect_error_contains_all ?? [])
            for s in wanted {
                #expect(text.contains(s), "\(fixture.name): error '\(text)' lacks '\(s)'")
            }
            #expect(error is KerasFormatError)
        }
    }
}
