import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// Targets beyond one class of a classifier, against TensorFlow's numbers
/// (tools/fixtures/make_target_fixtures.py, Tests/Fixtures/visualization/targets): a
/// segmentation class over its argmax cells or over a region, a regression output and its
/// negative, several classes of a classifier at once. Every array within
/// 1e-4 × (1 + max |reference|).
private let folder = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/visualization/targets")

private struct References: Decodable {
    let score: Float
    let gradient_layer: String
    let gradient_input: String
    let gradcam: String
}

private struct TargetManifest: Decodable {
    struct Image: Decodable {
        let png: String
        let input: String
        let width: Int
        let height: Int
    }
    struct Segmentation: Decodable {
        struct Target: Decodable {
            let name: String
            let `class`: Int
            let cells: Int
            let region: [Int]?
            let score: Float
            let gradient_layer: String
            let gradient_input: String
            let gradcam: String
        }
        let models: [String: String]
        let layer: String
        let logits: String
        let top_class: Int
        let targets: [Target]
    }
    struct Regression: Decodable {
        let models: [String: String]
        let layer: String
        let output: Float
        let increase: References
        let decrease: References
    }
    struct Classifier: Decodable {
        let models: [String: String]
        let layer: String
        let input: String
        let classes: [Int]
        let maps: [String: References]
    }
    let image: Image
    let segmentation: Segmentation
    let regression: Regression
    let classifier: Classifier
}

private let manifest: TargetManifest = {
    let data = try! Data(contentsOf: folder.appendingPathComponent("manifest.json"))
    return try! JSONDecoder().decode(TargetManifest.self, from: data)
}()

private func npy(_ name: String) throws -> Tensor { try Tensor.readNPY(contentsOf: folder.appendingPathComponent(name)) }

private func session(_ file: String) throws -> ModelSession {
    let url = folder.appendingPathComponent(file)
    return try ModelSession(keras: try KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
}

/// Within 1e-4 × (1 + max |reference|), element by element; 1e-4 × max |reference| below 1.
private func expectClose(
    _ ours: [Float], _ reference: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(ours.count == reference.count, "\(what): \(ours.count) values vs \(reference.count)", sourceLocation: sourceLocation)
    // Relative for arrays below 1 (the regressor's input gradient is ~1e-5: 1 + max would
    // not tell it from its negative).
    let top = reference.scalars.map(abs).max() ?? 0
    let bound = 1e-4 * (top < 1 ? top : 1 + top)
    let worst = zip(ours, reference.scalars).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst <= bound, "\(what): differs by \(worst) (bound \(bound))", sourceLocation: sourceLocation)
}

private func region(_ box: [Int]?) throws -> ImageRegion? {
    try box.map {
        try ImageRegion(
            PixelRegion(x0: $0[0], y0: $0[1], x1: $0[2], y1: $0[3]), imageWidth: manifest.image.width,
            imageHeight: manifest.image.height)
    }
}

private let formats = ["keras3-zip", "keras3-h5"]

@Test(arguments: formats)
func segmentationTargetsEqualTensorFlow(format: String) throws {
    let s = try session(try #require(manifest.segmentation.models[format]))
    #expect(s.hasPerPixelOutput && s.keras.head == .softmax)
    let network = s.network
    let x = try npy(manifest.image.input)
    let scoreNode = s.scoreNode(postActivation: false)
    let layer = try network.node(named: manifest.segmentation.layer)
    for ref in manifest.segmentation.targets {
        let target = CAMTarget(.segment(classIndex: ref.class, region: try region(ref.region)))
        let request = CAMRequest(layerNode: layer, scoreNode: scoreNode, targets: [target])
        let cam = try network.classActivationMap(x, request, method: .gradcam)
        let resolved = try #require(cam.target)
        #expect(resolved.classIndex == ref.class && resolved.cells == ref.cells, "\(format) \(ref.name): cells \(resolved.cells ?? -1)")
        #expect(abs(cam.map.score - ref.score) <= 1e-4 * (1 + abs(ref.score)), "\(format) \(ref.name): score \(cam.map.score)")
        expectClose(cam.map.heatmap, try npy(ref.gradcam), "\(format) \(ref.name) Grad-CAM")
        let trace = try network.forward(x, stopAfter: scoreNode, backwardTo: layer)
        let g = try network.backward(from: scoreNode, seed: resolved.seed(like: trace[scoreNode]!), to: layer, trace: trace)
        expectClose(g.scalars, try npy(ref.gradient_layer), "\(format) \(ref.name) d score / d \(manifest.segmentation.layer)")
        let saliency = try network.classActivationMap(x, request, method: .saliency)
        expectClose(try #require(saliency.attribution).scalars, try npy(ref.gradient_input), "\(format) \(ref.name) d score / d input")
    }
    // The argmax masks and the region are other targets: their gradients differ (the test
    // tells them apart; Grad-CAM's channel means can make two maps alike).
    let gradients = try manifest.segmentation.targets.map { try npy($0.gradient_layer).scalars }
    for (a, b) in [(0, 1), (1, 2), (0, 2)] {
        let scale = gradients[a].map(abs).max()!
        #expect(zip(gradients[a], gradients[b]).map { abs($0 - $1) }.max()! > 0.1 * scale, "targets \(a) and \(b)")
    }
    // A segmentation's default layer is the last convolution before its per-pixel head.
    #expect(s.defaultCAMLayer?.name == manifest.segmentation.layer)
}

@Test func aSegmentationWithoutAClassExplainsTheClassOfTheMostCells() throws {
    let s = try session(try #require(manifest.segmentation.models["keras3-zip"]))
    let x = try npy(manifest.image.input)
    let layer = try s.network.node(named: manifest.segmentation.layer)
    let ref = try #require(manifest.segmentation.targets.first { $0.class == manifest.segmentation.top_class && $0.region == nil })
    // `class=` (a unit target) on a per-pixel output is the segmentation target too.
    for target in [CAMTarget(.segment(classIndex: nil, region: nil)), .classIndex(nil), .classIndex(ref.class)] {
        let cam = try s.network.classActivationMap(
            x, CAMRequest(layerNode: layer, scoreNode: s.scoreNode(postActivation: false), targets: [target]), method: .gradcam)
        #expect(cam.map.classIndex == manifest.segmentation.top_class, "\(target)")
        expectClose(cam.map.heatmap, try npy(ref.gradcam), "\(target)")
    }
}

@Test(arguments: formats)
func regressionExplainsItsOutputAndWhatLowersIt(format: String) throws {
    let s = try session(try #require(manifest.regression.models[format]))
    #expect(s.keras.head == nil && s.scoreKind(postActivation: false) == "output")
    let x = try npy(manifest.image.input)
    let layer = try s.network.node(named: manifest.regression.layer)
    for (decrease, ref) in [(false, manifest.regression.increase), (true, manifest.regression.decrease)] {
        let request = CAMRequest(
            layerNode: layer, scoreNode: s.scoreNode(postActivation: false), targets: [CAMTarget(.unit(nil), decrease: decrease)])
        let cam = try s.network.classActivationMap(x, request, method: .gradcam)
        #expect(abs(cam.map.score - ref.score) <= 1e-4 * (1 + abs(ref.score)), "decrease \(decrease): score \(cam.map.score)")
        expectClose(cam.map.heatmap, try npy(ref.gradcam), "decrease \(decrease) Grad-CAM")
        let saliency = try s.network.classActivationMap(x, request, method: .saliency)
        expectClose(try #require(saliency.attribution).scalars, try npy(ref.gradient_input), "decrease \(decrease) d score / d input")
    }
    let up = try npy(manifest.regression.increase.gradcam).scalars
    let down = try npy(manifest.regression.decrease.gradcam).scalars
    #expect(zip(up, down).map { abs($0 - $1) }.max()! > 0.5, "what raises and what lowers the output are other places")
}

@Test func aSigmoidHeadsDecreaseIsClassZerosLogit() throws {
    let sigmoid = folder.deletingLastPathComponent().appendingPathComponent("sigmoid")
    struct Manifest: Decodable {
        struct Image: Decodable {
            let input: String
            let logit: Float
            let logit_gradient_input: String
        }
        let models: [String: String]
        let images: [Image]
    }
    let m = try JSONDecoder().decode(Manifest.self, from: try Data(contentsOf: sigmoid.appendingPathComponent("manifest.json")))
    let url = sigmoid.appendingPathComponent(try #require(m.models["keras3-zip"]))
    let s = try ModelSession(keras: try KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
    let image = m.images[0]
    let x = try Tensor.readNPY(contentsOf: sigmoid.appendingPathComponent(image.input))
    let request = CAMRequest(layerNode: 0, scoreNode: s.scoreNode(postActivation: false), targets: [CAMTarget(.unit(0), decrease: true)])
    let result = try s.network.classActivationMap(x, request, method: .saliency)
    #expect(abs(result.map.score + image.logit) <= 1e-4 * (1 + abs(image.logit)), "score \(result.map.score) vs −\(image.logit)")
    let negated = try Tensor.readNPY(contentsOf: sigmoid.appendingPathComponent(image.logit_gradient_input))
    expectClose(
        try #require(result.attribution).scalars, Tensor(shape: negated.shape, scalars: negated.scalars.map { -$0 }), "d(−z)/d input")
}

@Test(arguments: formats)
func severalClassesAreTensorFlowsMapsOfEach(format: String) throws {
    let s = try session(try #require(manifest.classifier.models[format]))
    let x = try npy(manifest.classifier.input)
    let layer = try s.network.node(named: manifest.classifier.layer)
    let scoreNode = s.scoreNode(postActivation: false)
    let request = CAMRequest(layerNode: layer, scoreNode: scoreNode, targets: manifest.classifier.classes.map { .classIndex($0) })
    let cams = try s.network.classActivationMaps(x, request, method: .gradcam)
    #expect(cams.map(\.map.classIndex) == manifest.classifier.classes, "one map per class, in the order asked")
    for (k, cam) in zip(manifest.classifier.classes, cams) {
        let ref = try #require(manifest.classifier.maps[String(k)])
        #expect(abs(cam.map.score - ref.score) <= 1e-4 * (1 + abs(ref.score)), "class \(k): score \(cam.map.score)")
        expectClose(cam.map.heatmap, try npy(ref.gradcam), "class \(k) Grad-CAM")
    }
}

/// Each method's maps of several targets equal its maps of each alone: the shared passes
/// change nothing. Regression and segmentation targets and aug_smooth included.
@Test(arguments: CAMMethod.allCases)
func severalTargetsEqualSeparateMaps(method: CAMMethod) throws {
    let options = CAMOptions(smoothGradSamples: 3, integratedGradientsSteps: 4)
    let classifier = try session(try #require(manifest.classifier.models["keras3-h5"]))
    let segmenter = try session(try #require(manifest.segmentation.models["keras3-h5"]))
    let box = try region(manifest.segmentation.targets.first { $0.region != nil }?.region)
    let cases: [(ModelSession, Tensor, [CAMTarget], CAMOptions)] = [
        (
            classifier, try npy(manifest.classifier.input),
            manifest.classifier.classes.map { .classIndex($0) } + [CAMTarget(.unit(4), decrease: true)],
            options
        ),
        (
            segmenter, try npy(manifest.image.input),
            [CAMTarget(.segment(classIndex: 1, region: nil)), CAMTarget(.segment(classIndex: 2, region: box), decrease: true)],
            options
        ),
    ]
    for (s, x, targets, options) in cases {
        var opts = options
        for augSmooth in method.resolution == .layer ? [false, true] : [false] {
            opts.augSmooth = augSmooth
            let layer = try #require(s.defaultCAMLayer).nodeId
            let scoreNode = s.scoreNode(postActivation: false)
            let together = try s.network.classActivationMaps(
                x, CAMRequest(layerNode: layer, scoreNode: scoreNode, targets: targets), method: method, options: opts)
            #expect(together.count == targets.count)
            for (target, shared) in zip(targets, together) {
                let alone = try s.network.classActivationMap(
                    x, CAMRequest(layerNode: layer, scoreNode: scoreNode, targets: [target]), method: method, options: opts)
                #expect(shared.map.classIndex == alone.map.classIndex && shared.map.score == alone.map.score)
                let worst = zip(shared.map.heatmap, alone.map.heatmap).map { abs($0 - $1) }.max() ?? 1
                #expect(worst <= 1e-6, "\(method.rawValue) aug_smooth \(augSmooth) \(target): differs by \(worst)")
            }
        }
    }
}

@Test func aRegionRequestDrawsTensorFlowsMapAndNamesWhatItScored() throws {
    let s = try session(try #require(manifest.segmentation.models["keras3-zip"]))
    let ref = try #require(manifest.segmentation.targets.first { $0.region != nil })
    var request = HeatmapRequest()
    request.classChoice = String(ref.class)
    request.region = try PixelRegion(parsing: try #require(ref.region).map(String.init).joined(separator: ","))
    request.format = .json
    let photo = try Data(contentsOf: folder.appendingPathComponent(manifest.image.png))
    let rendered = try s.render(request, input: .image(photo))
    #expect(rendered[fact: "Region"] == "4,8,21,27" && rendered[fact: "Target-Cells"] == String(ref.cells))
    let object = try #require(try JSONSerialization.jsonObject(with: rendered.body) as? [String: Any])
    let heatmap = try #require(object["heatmap"] as? [Double]).map(Float.init)
    expectClose(heatmap, try npy(ref.gradcam), "the photo's region map")
    #expect(object["region"] as? String == "4,8,21,27" && object["cells"] as? Int == ref.cells)
    // The predictions of a per-pixel output are its classes, by their mean probability.
    let top = try #require(object["top"] as? [[String: Any]])
    #expect(top.count == 3 && Set(top.compactMap { $0["class"] as? Int }) == [0, 1, 2])

    // The faithfulness probe scores the same cells: the unperturbed image's score is
    // Σ over the region's cells of the class's probability.
    request.metrics = [.deletion]
    let withMetrics = try s.render(request, input: .image(photo))
    let document = try #require(try JSONSerialization.jsonObject(with: withMetrics.body) as? [String: Any])
    let curve = try #require((document["metrics"] as? [String: Any])?["deletion_curve"] as? [Double])
    let logits = try npy(manifest.segmentation.logits)
    var expected = 0.0
    let cells = try #require(try region(ref.region)).cells(gridWidth: 16, gridHeight: 16)
    for row in cells.rows {
        for col in cells.columns {
            let p = Engine.softmax(Array(logits.scalars[((row * 16 + col) * 3)..<((row * 16 + col) * 3 + 3)]))
            expected += Double(p[ref.class])
        }
    }
    #expect(abs(curve[0] - expected) <= 1e-4 * (1 + expected), "deletion starts at \(curve[0]), the region's probability \(expected)")
}

@Test func targetRequestsAreCanonicalAndPartOfTheIdentity() throws {
    let s = try session(try #require(manifest.segmentation.models["keras3-zip"]))
    var request = HeatmapRequest()
    (request.classes, request.target, request.region, request.layer) = (
        ["0", "2"], .decrease, try PixelRegion(parsing: "1,2,3,4"), "last_conv"
    )
    (request.displayPercentile, request.numerics) = (95, .fast)
    try expectEveryFieldInIdentity(try request.canonical(for: s), unset: 1)
    var compare = CompareRequest(methods: [.gradcam, .saliency])
    (compare.classChoice, compare.target, compare.region) = ("1", .decrease, try PixelRegion(parsing: "1,2,3,4"))
    try expectEveryFieldInIdentity(try compare.canonical(for: s))
    // One class in `classes` is `class`; `increase` is the default: the addresses of plain requests.
    var one = HeatmapRequest()
    (one.classes, one.target) = (["2"], .increase)
    var plain = HeatmapRequest()
    plain.classChoice = "2"
    #expect(try one.canonical(for: s) == plain.canonical(for: s))
    #expect(try one.canonical(for: s).canonicalJSON == plain.canonical(for: s).canonicalJSON)
}

@Test func badTargetsAreRefusedNamingTheParameter() throws {
    let segmenter = try session(try #require(manifest.segmentation.models["keras3-zip"]))
    let classifier = try session(try #require(manifest.classifier.models["keras3-zip"]))
    func name(_ body: () throws -> Void) -> String? {
        do {
            try body()
        } catch RequestError.badParameter(let name, _, _) {
            return name
        } catch {
            return "\(error)"
        }
        return nil
    }
    #expect(name { _ = try PixelRegion(parsing: "10,0,5,8") } == "region", "x1 < x0")
    #expect(name { _ = try PixelRegion(parsing: "0,0,5") } == "region")
    #expect(name { _ = try PixelRegion(parsing: "0,0,\(Int.max),8") } == "region")
    #expect(name { _ = try PixelRegion(parsing: "-1,0,5,8") } == "region")
    var request = HeatmapRequest()
    request.region = try PixelRegion(parsing: "0,0,8,8")
    #expect(name { _ = try request.canonical(for: classifier) } == "region", "a classifier has no cells")
    request.region = try PixelRegion(parsing: "0,0,33,8")
    let photo = try Data(contentsOf: folder.appendingPathComponent(manifest.image.png))
    #expect(name { _ = try segmenter.render(request, input: .image(photo)) } == "region", "outside the 32×32 image")
    request.region = nil
    request.classes = ["0", "3"]
    #expect(name { _ = try request.canonical(for: segmenter) } == "classes", "the segmenter has 3 classes")
    request.classes = (0..<17).map(String.init)
    #expect(name { _ = try request.canonical(for: classifier) } == "classes", "more than 16")
    request.classes = ["1", "1"]
    #expect(name { _ = try request.canonical(for: classifier) } == "classes", "twice")
    (request.classes, request.classChoice) = (["1", "2"], "3")
    #expect(name { _ = try request.canonical(for: classifier) } == "classes", "class and classes")
    (request.classChoice, request.metrics) = (nil, [.deletion])
    #expect(name { _ = try request.canonical(for: classifier) } == "metrics")
}

@Test func aComparisonScoresEachMethodsMapOfTheRegion() throws {
    let s = try session(try #require(manifest.segmentation.models["keras3-zip"]))
    let ref = try #require(manifest.segmentation.targets.first { $0.region != nil })
    let photo = try Data(contentsOf: folder.appendingPathComponent(manifest.image.png))
    var compare = CompareRequest(methods: [.gradcam, .saliency])
    (compare.classChoice, compare.region, compare.metrics) = (String(ref.class), try PixelRegion(parsing: "4,8,21,27"), [.deletion])
    let document = try s.compare(compare, input: .image(photo))
    #expect(document.class == ref.class && document.region == "4,8,21,27")
    for row in document.methods {
        #expect(abs(row.score - ref.score) <= 1e-4 * (1 + abs(ref.score)), "\(row.method.rawValue): score \(row.score)")
        // Each method's scores are what the heatmap request with the same region gives.
        var single = compare.heatmapRequest(row.method)
        single.format = .json
        let rendered = try s.render(single, input: .image(photo))
        #expect(rendered[fact: "Metric-Deletion-AUC"] == String(format: "%.6f", try #require(row.scores.deletionAUC)))
    }
}
