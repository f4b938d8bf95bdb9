import Engine
import Foundation
import Testing

@testable import KerasFormat

/// Suites that open HDF5 files run one at a time: they check that no HDF5
/// object stays open, which only holds when no other test is loading.
@Suite(.serialized) enum SerialTests {}

/// Tests/Fixtures/keras, next to this test target.
let fixtureDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/keras")

/// One entry of Tests/Fixtures/keras/manifest.json (written by tools/fixtures/make_fixtures.py).
struct FixtureCase: Decodable, Sendable, CustomStringConvertible {
    struct Gradients: Decodable, Sendable {
        let output_index: Int
        let pre_softmax: Bool
        let wrt: [String: String]
    }
    let kind: String
    let name: String
    let model: String
    let format: String
    let input: String?
    let output: String?
    let activations: [String: String]?
    let gradients: Gradients?
    let layers: [String]?
    let expect_error_contains: String?
    let expect_error_contains_all: [String]?
    /// The folder the manifest's paths are relative to.
    var directory: URL = fixtureDirectory

    enum CodingKeys: String, CodingKey {
        case kind, name, model, format, input, output, activations, gradients, layers
        case expect_error_contains, expect_error_contains_all
    }

    var description: String { name }
    var modelURL: URL { directory.appendingPathComponent(model) }
    func url(_ file: String) -> URL { directory.appendingPathComponent(file) }
}

enum Fixtures {
    static let manifestURL = fixtureDirectory.appendingPathComponent("manifest.json")

    static func load(from directory: URL = fixtureDirectory) throws -> [FixtureCase] {
        let url = directory.appendingPathComponent("manifest.json")
        return try JSONDecoder().decode([FixtureCase].self, from: Data(contentsOf: url)).map {
            var c = $0
            c.directory = directory
            return c
        }
    }

    /// Empty when the manifest is missing; `manifestIsPresent` fails then.
    static let all: [FixtureCase] = (try? load()) ?? []
    static var ok: [FixtureCase] { all.filter { $0.kind == "ok" } }
    static var bad: [FixtureCase] { all.filter { $0.kind == "bad" } }
}

/// max|ours − keras| ≤ 1e-4 × (1 + max|keras|).
func closeEnough(_ ours: Tensor, _ keras: Tensor) -> (ok: Bool, diff: Float, bound: Float) {
    guard ours.shape == keras.shape else { return (false, .infinity, 0) }
    let diff = ours.maxAbsDifference(keras)
    let bound = 1e-4 * (1 + keras.maxAbs)
    return (diff <= bound, diff, bound)
}

/// ‖ours − keras‖₂ / ‖keras‖₂.
func relativeNorm(_ ours: Tensor, _ keras: Tensor) -> Float {
    var d: Double = 0
    var k: Double = 0
    for i in 0..<keras.count {
        let e = Double(ours.scalars[i] - keras.scalars[i])
        d += e * e
        k += Double(keras.scalars[i]) * Double(keras.scalars[i])
    }
    return Float((d / max(k, 1e-30)).squareRoot())
}

/// Loads the fixture's model, runs its input, and checks output, activations
/// and gradients against Keras' numbers.
///
/// `deepInputGradientTolerance`: for full-size networks, the gradient w.r.t.
/// the input is compared by relative L2 norm instead of element-wise. Float32
/// rounding legitimately flips a few ReLU kinks on the way down (VGG16 at
/// 224×224: one unit of block3_conv2 with pre-activation 2.9e-6 in float64
/// comes out negative in float32 here), and one flip moves a whole receptive
/// field of the input gradient; Keras' own float32 input gradient of
/// MobileNetV2 differs from a float64 recomputation by 0.35 % (relative norm).
func checkAgainstKeras(_ fixture: FixtureCase, deepInputGradientTolerance: Float? = nil) throws {
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
            #expect(model.head == .softmax, "\(fixture.name): the manifest expects a softmax head")
        } else {
            // Keras differentiated the model's own output: a sigmoid head's probability
            // (its logits node is set, as for softmax heads), or an output without a head.
            from = network.outputNode
            let sigmoid = (network.nodes[from].layer as? Activation)?.function == .sigmoid
            #expect(model.head == (sigmoid ? .sigmoid : nil), "\(fixture.name): head \(String(describing: model.head))")
            #expect((model.logitsNode != nil) == sigmoid, "\(fixture.name): logitsNode set without a softmax or sigmoid head")
        }
        let y = try #require(trace[from])
        var seed = Tensor(zeros: y.shape)
        let perSample = y.sampleCount
        for b in 0..<y.batch { seed.scalars[b * perSample + g.output_index] = 1 }
        for (wrt, file) in g.wrt.sorted(by: { $0.key < $1.key }) {
            let to = wrt == "input" ? 0 : try network.node(named: wrt)
            let ours = try network.backward(from: from, seed: seed, to: to, trace: trace)
            let keras = try Tensor.readNPY(contentsOf: fixture.url(file))
            if wrt == "input", let tolerance = deepInputGradientTolerance {
                try #require(ours.shape == keras.shape)
                let r = relativeNorm(ours, keras)
                #expect(r <= tolerance, "\(fixture.name) gradient w.r.t. input: relative L2 error \(r) > \(tolerance)")
                continue
            }
            let c = closeEnough(ours, keras)
            #expect(c.ok, "\(fixture.name) gradient w.r.t. \(wrt): shape \(ours.shape) vs \(keras.shape), max diff \(c.diff) > \(c.bound)")
        }
    }
}
