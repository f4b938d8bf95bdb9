import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// A request's identity (its content address: cache key, ETag, job identity) must
/// cover every field, so no parameter can be forgotten and give a wrong cache hit.
private let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The bundled model, loaded once for the request tests (here and CompareRequestTests).
let bundledRequestSession: ModelSession = {
    let profile = try! ModelProfile.read(contentsOf: root.appendingPathComponent("models/efficientnet_lite0.json"))
    return try! ModelSession(profile: profile)
}()
private var session: ModelSession { bundledRequestSession }

/// Values tried in place of a string field, in order, until one decodes to a different request.
private let alternativeStrings = [
    "gradcam++", "magma", "heatmap", "npy", "lucid", "neuron", "grey", "json",
    "block1a_project_conv", "281", "book", "road", "exact", "increase", "0,0,1,1",
]

/// Every field of `request` (all optionals set) is in its canonical encoding, and
/// changing any one of them — found by walking the encoded keys, not a hand list —
/// changes the content address.
func expectEveryFieldInIdentity<R: RenderRequest>(_ request: R, unset: Int = 0) throws {
    let fields = Mirror(reflecting: request).children.compactMap(\.label)
    let object = try JSONDecoder().decode([String: Field].self, from: request.canonicalJSON)
    #expect(object.count == fields.count - unset, "\(R.self): encoded keys \(object.keys.sorted()) vs stored properties \(fields)")
    let address = request.contentAddress(model: "m", image: "i")
    for key in object.keys {
        var changed: R?
        let candidates: [Field]
        switch object[key]! {
        case .bool(let b): candidates = [.bool(!b)]
        case .number(let n): candidates = [.number(n + 1), .number(n / 2), .number(3)]
        case .string(let s): candidates = alternativeStrings.filter { $0 != s }.map(Field.string)
        case .list(let items): candidates = alternativeStrings.map { .list(items + [.string($0)]) } + [.list([])]
        }
        for candidate in candidates where changed == nil {
            var mutated = object
            mutated[key] = candidate
            if let data = try? JSONEncoder().encode(mutated),
                let decoded = try? JSONDecoder().decode(R.self, from: data), decoded != request
            {
                changed = decoded
            }
        }
        let other = try #require(changed, "\(R.self).\(key): no other value could be encoded")
        #expect(other.contentAddress(model: "m", image: "i") != address, "\(R.self).\(key) is not part of the identity")
    }
    #expect(request.contentAddress(model: "m2", image: "i") != address, "the model is part of the identity")
    #expect(request.contentAddress(model: "m", image: "i2") != address, "the image is part of the identity")
}

/// A JSON scalar or list, as a request's fields encode.
private indirect enum Field: Codable {
    case bool(Bool), number(Double), string(String), list([Field])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let items = try? c.decode([Field].self) {
            self = .list(items)
        } else {
            self = .string(try c.decode(String.self))
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .bool(let b): try c.encode(b)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .list(let items): try c.encode(items)
        }
    }
}

@Test func everyFieldOfEveryRequestIsPartOfItsIdentity() throws {
    var heatmap = HeatmapRequest()
    (heatmap.classChoice, heatmap.layer, heatmap.displayPercentile, heatmap.numerics) = ("281", "top_activation", 95, .fast)
    heatmap.target = .decrease
    // `classes` is the other way to name classes, and a classifier has no region (TargetTests
    // covers both on a segmentation model).
    try expectEveryFieldInIdentity(try heatmap.canonical(for: session), unset: 2)
    (heatmap.classChoice, heatmap.classes) = (nil, ["281", "282", "285"])
    try expectEveryFieldInIdentity(try heatmap.canonical(for: session), unset: 2)

    var activations = ActivationsRequest(layer: "stem_activation")
    (activations.channel, activations.numerics) = (3, .fast)
    try expectEveryFieldInIdentity(try activations.canonical(for: session))

    var filters = FilterRequest(layer: "stem_activation", first: 2, count: 4)
    (filters.steps, filters.size, filters.start, filters.numerics) = (5, 64, .grey, .fast)
    try expectEveryFieldInIdentity(try filters.canonical(for: session))
    filters.method = .lucid
    // Lucid has its own start image: the canonical request leaves `start` out.
    try expectEveryFieldInIdentity(try filters.canonical(for: session), unset: 1)

    var compare = CompareRequest(methods: [.gradcam, .saliency])
    (compare.classChoice, compare.metrics, compare.target) = ("281", [.deletion, .road], .decrease)
    // A classifier has no region (TargetTests covers it on a segmentation model).
    try expectEveryFieldInIdentity(try compare.canonical(for: session), unset: 1)

    try expectEveryFieldInIdentity(try PredictRequest(top: 3, output: true, numerics: .fast).canonical(for: session))
    try expectEveryFieldInIdentity(try OverviewRequest().canonical(for: session))
}

@Test func canonicalRequestsFillInWhatTheModelDecides() throws {
    // The default layer, the class by label and the filled-in defaults give the same identity as spelled out.
    var implicit = HeatmapRequest()
    implicit.classChoice = "tabby"
    var explicit = HeatmapRequest()
    (explicit.classChoice, explicit.layer) = ("281", "top_activation")
    #expect(try implicit.canonical(for: session) == explicit.canonical(for: session))
    #expect(try implicit.canonical(for: session).canonical(for: session) == implicit.canonical(for: session), "canonical is idempotent")
    #expect(try explicit.canonical(for: session).layer == session.defaultCAMLayer?.path)

    // Pixel attributions read no layer: naming one does not make another picture.
    var saliency = HeatmapRequest()
    saliency.method = .saliency
    var named = saliency
    named.layer = "stem_activation"
    #expect(try saliency.canonical(for: session) == named.canonical(for: session))
    #expect(try saliency.canonical(for: session).displayPercentile == 99)

    var grid = FilterRequest(layer: "stem_activation", count: nil)
    grid = try grid.canonical(for: session)
    #expect(grid.count == 32 && grid.steps == 40 && grid.start == .grey)
    #expect(grid.size == 224, "the bundled model takes 224 × 224: its size decides")
}

@Test func requestsRefuseOutOfRangeValuesByName() throws {
    // An index near Int.max is refused before `first + count` is formed.
    let huge = FilterRequest(layer: "stem_activation", first: Int.max, count: 1)
    #expect(throws: RequestError.self) { try huge.canonical(for: session) }
    let overflowing = FilterRequest(layer: "stem_activation", first: 31, count: Int.max)
    #expect(throws: RequestError.self) { try overflowing.canonical(for: session) }
    var heatmap = HeatmapRequest()
    heatmap.alpha = 2
    #expect(throws: RequestError.badParameter(name: "alpha", value: "2.0", allowed: "give a number in 0.0...1.0")) {
        try heatmap.canonical(for: session)
    }
    var activations = ActivationsRequest(layer: "stem_activation")
    activations.channel = Int.min
    #expect(throws: RequestError.self) { try activations.canonical(for: session) }
    #expect(throws: RequestError.unknownLayer("nope", valid: session.keras.layers.map(\.name))) {
        try ActivationsRequest(layer: "nope").canonical(for: session)
    }
}

@Test func convolutionsAreFoundByEngineType() throws {
    let names = session.galleryLayers.map(\.convolution.className)
    #expect(!names.isEmpty)
    #expect(Set(names).isSubset(of: ["Conv2D", "DepthwiseConv2D"]), "\(Set(names))")
    #expect(session.galleryLayers.first?.target.name == "stem_activation")
}
