import Engine
import Foundation
import Imaging
import KerasFormat
import Server
import Testing
import Visualization

/// The target fixtures (tools/fixtures/make_target_fixtures.py): a segmenter with a per-pixel
/// head at half the photo's size, a Dense(1) regressor, and the 32×32 photo both take.
private let targets = root.appendingPathComponent("Tests/Fixtures/visualization/targets")

private func served(_ file: String) -> (session: ModelSession, digest: String) {
    let url = targets.appendingPathComponent(file)
    let session = try! ModelSession(keras: try! KerasModel.load(contentsOf: url), profile: ModelProfile(modelURL: url))
    return (session, try! session.modelDigest())
}

private let segmenter = served("tiny_segmenter.keras")
private let regressor = served("tiny_regressor.h5")

private func photo() throws -> Data { try Data(contentsOf: targets.appendingPathComponent("photo.png")) }

private func reference(_ name: String) throws -> [Float] {
    try Tensor.readNPY(contentsOf: targets.appendingPathComponent(name)).scalars
}

/// max |a − b| ≤ 1e-4 × (1 + max |b|).
private func close(_ a: [Double], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs(Float($0) - $1) <= 1e-4 * (1 + (b.map(abs).max() ?? 0)) }
}

/// `region`, `target=decrease` and `classes` through `POST /heatmap` on a served model
/// of the user's own, and their bad values as JSON errors naming the parameter.
@Suite(.timeLimit(.minutes(5))) struct TargetRouteTests {
    @Test func aRegionIsScoredOverTheCellsItCovers() async throws {
        try await withServer(model: segmenter) { _, client in
            let r = try await client.post("/heatmap?class=2&region=4,8,21,27&format=json", image: try photo())
            #expect(r.status == .ok, "\(r.text)")
            #expect(r.header("X-Region") == "4,8,21,27" && r.header("X-Target-Cells") == "90" && r.header("X-Class") == "2")
            let map = try #require(try r.json()["heatmap"] as? [Double])
            let regionReference = try reference("seg.class2.region.gradcam.npy")
            #expect(close(map, regionReference), "the map is TensorFlow's of the region target")
            // Without the region, class 2's own cells: another map.
            let cells = try await client.post("/heatmap?class=2&format=json", image: try photo())
            let own = try #require(try cells.json()["heatmap"] as? [Double])
            let ownReference = try reference("seg.class2.gradcam.npy")
            #expect(close(own, ownReference) && cells.header("X-Target-Cells") == "117")
            let overlay = try await client.post("/heatmap?class=2&region=4,8,21,27", image: try photo())
            #expect(overlay.status == .ok)
            #expect(try decodeImage(overlay.data).width == 32)
            let plain = try await client.post("/heatmap?class=2", image: try photo())
            #expect(overlay.headers[.eTag] != plain.headers[.eTag], "the region is part of the address")
        }
    }

    @Test func decreaseExplainsWhatLowersTheOutput() async throws {
        try await withServer(model: regressor) { _, client in
            for direction in ["increase", "decrease"] {
                let r = try await client.post("/heatmap?target=\(direction)&format=json", image: try photo())
                #expect(r.status == .ok, "\(r.text)")
                #expect(r.header("X-Target") == (direction == "decrease" ? "decrease" : nil))
                #expect(r.header("X-Score-Kind") == "output")
                let map = try #require(try r.json()["heatmap"] as? [Double])
                let expected = try reference("reg.\(direction).gradcam.npy")
                #expect(close(map, expected), "\(direction)")
            }
        }
    }

    @Test func severalClassesAreOneGridOrOneDocument() async throws {
        try await withServer(model: segmenter) { _, client in
            let json = try await client.post("/heatmap?classes=1,2&format=json", image: try photo())
            #expect(json.status == .ok, "\(json.text)")
            #expect(json.header("X-Classes") == "1,2" && json.header("X-Class") == nil)
            let maps = try #require(try json.json()["maps"] as? [[String: Any]])
            #expect(maps.compactMap { $0["class"] as? Int } == [1, 2])
            for (map, file) in zip(maps, ["seg.class1.gradcam.npy", "seg.class2.gradcam.npy"]) {
                let expected = try reference(file)
                #expect(close(try #require(map["heatmap"] as? [Double]), expected), "\(file)")
            }
            // Each map is the one a request for its class alone gives.
            for (k, map) in zip([1, 2], maps) {
                let alone = try await client.post("/heatmap?class=\(k)&format=json", image: try photo())
                let single = try alone.json()["heatmap"] as? [Double]
                #expect(single == (map["heatmap"] as? [Double]), "class \(k)")
            }
            // The PNG: one labelled tile per class, side by side (32 px each, 4 px apart).
            let grid = try await client.post("/heatmap?classes=0,2", image: try photo())
            #expect(grid.status == .ok && grid.header("X-Classes") == "0,2")
            let picture = try decodeImage(grid.data)
            #expect(picture.width == 2 * 32 + 4 && picture.height == 32 + 9, "\(picture.width)x\(picture.height)")
        }
    }

    @Test func badTargetsAreJSONErrorsNamingTheParameter() async throws {
        try await withServer(model: segmenter) { _, client in
            let image = try photo()
            for (query, parameter) in [
                ("region=0,0,33,8", "region"), ("region=10,0,5,8", "region"), ("region=0,0,8", "region"),
                ("region=0,0,9223372036854775807,8", "region"), ("classes=0,3", "classes"), ("classes=1,1", "classes"),
                ("classes=" + (0..<17).map { _ in "1" }.joined(separator: ","), "classes"), ("target=up", "target"),
                ("class=1&classes=0,2", "classes"), ("classes=0,2&metrics=deletion", "metrics"),
            ] {
                let r = try await client.post("/heatmap?\(query)", image: image)
                #expect(r.status == .badRequest, "\(query): \(r.status) \(r.text)")
                let (code, detail) = try r.error()
                #expect(code == "bad_request" && detail.hasPrefix("\(parameter)="), "\(query): \(detail)")
            }
            try await client.expectHealthy()
        }
        try await withServer(model: regressor) { _, client in
            let r = try await client.post("/heatmap?region=0,0,8,8", image: try photo())
            #expect(r.status == .badRequest, "\(r.text)")
            let detail = try r.error().detail
            #expect(detail.hasPrefix("region="), "a regression has no cells")
        }
    }

    /// A segmentation's prediction is its mask (the argmax of every cell, TensorFlow's) and
    /// its classes ranked by mean probability, not the top of the flattened grid; a
    /// classifier's answer has no mask.
    @Test func aSegmentationPredictsItsMask() async throws {
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: targets.appendingPathComponent("manifest.json")))
        let segmentation = try #require((manifest as? [String: Any])?["segmentation"] as? [String: Any])
        let cells = try #require(segmentation["class_cells"] as? [Int])
        let argmax = try reference("seg.argmax.npy").map { Int($0) }
        let probabilities = try Tensor.readNPY(contentsOf: targets.appendingPathComponent("seg.logits.npy"))
        try await withServer(model: segmenter) { _, client in
            let r = try await client.post("/api/predict?top=3", image: try photo())
            #expect(r.status == .ok, "\(r.text)")
            let mask = try #require(try r.json()["segmentation"] as? [String: Any])
            #expect(mask["height"] as? Int == 16 && mask["width"] as? Int == 16)
            #expect(mask["argmax"] as? [Int] == argmax, "the mask is TensorFlow's argmax")
            #expect(mask["cells"] as? [Int] == cells)
            let top = try #require(try r.json()["top"] as? [[String: Any]])
            #expect(top.count == 3 && Set(top.compactMap { $0["class"] as? Int }) == [0, 1, 2], "\(top)")
            // Ranked by the mean softmax over the cells.
            let logits = probabilities.scalars
            var mean = [Double](repeating: 0, count: 3)
            for cell in 0..<256 {
                let z = (0..<3).map { Double(logits[cell * 3 + $0]) }
                let e = z.map { exp($0 - z.max()!) }
                for c in 0..<3 { mean[c] += e[c] / e.reduce(0, +) / 256 }
            }
            for p in top {
                let c = try #require(p["class"] as? Int)
                let score = try #require(p["score"] as? Double)
                #expect(abs(score - mean[c]) <= 1e-5, "class \(c)")
            }
            // A heatmap's probability of its class is the same mean (each cell's softmax).
            for c in 0..<3 {
                let heatmap = try await client.post("/heatmap?class=\(c)&format=json", image: try photo())
                let probability = try #require(heatmap.header("X-Probability").flatMap(Double.init), "\(heatmap.text)")
                #expect(abs(probability - mean[c]) <= 1e-5, "class \(c): X-Probability \(probability), mean \(mean[c])")
            }
        }
        try await withServer(model: regressor) { _, client in
            let r = try await client.post("/api/predict", image: try photo())
            let document = try r.json()
            #expect(r.status == .ok && document["segmentation"] == nil, "\(r.text)")
        }
    }
}
