import Foundation
import HTTPTypes
import Imaging
import Server
import Testing
import Visualization

/// Every endpoint against a real server on loopback with the bundled model; pictures and
/// numbers compared with what the library computes for the same input.
@Suite(.timeLimit(.minutes(5))) struct RouteTests {
    @Test func healthReadinessAndModelSummary() async throws {
        try await withServer { service, client in
            try await client.expectHealthy()
            let ready = try await client.get("/readyz")
            #expect(ready.status == .ok)
            #expect(try ready.json()["status"] as? String == "ready")

            let r = try await client.get("/api/model")
            #expect(r.status == .ok)
            let model = try r.json()
            #expect(model["classes"] as? Int == 1000)
            #expect(model["labels"] as? Bool == true)
            #expect(model["default_heatmap_layer"] as? String == "top_activation")
            #expect(model["sha256"] as? String == service.modelDigest)
            let input = try #require(model["input"] as? [String: Any])
            #expect(input["height"] as? Int == 224 && input["width"] as? Int == 224)
            let layers = try #require(model["layers"] as? [[String: Any]])
            #expect(layers.count == service.session.keras.layers.count)
            let stem = try #require(layers.first { $0["name"] as? String == "stem_conv" })
            #expect(stem["convolution"] as? Bool == true && stem["spatial"] as? Bool == true && stem["filters"] as? Int == 32)
            #expect(stem["activated_output"] as? String == "stem_activation", "BN and ReLU6 follow stem_conv")
            let pool = try #require(layers.first { $0["name"] as? String == "avg_pool" })
            #expect(pool["spatial"] as? Bool == false)
            // Every method with its cost at the default layer (top_activation: 1280 channels).
            let methods = try #require(model["cam_methods"] as? [String])
            #expect(methods == CAMMethod.allCases.map(\.rawValue))
            let info = try #require(model["cam_method_info"] as? [[String: Any]])
            let passes = Dictionary(uniqueKeysWithValues: info.map { ($0["name"] as? String ?? "", $0["passes"] as? Int ?? -1) })
            #expect(passes["xgradcam"] == 1 && passes["hirescam"] == 1 && passes["gradcam-elementwise"] == 1)
            #expect(passes["ablationcam"] == 1281 && passes["scorecam"] == 1281)
        }
    }

    @Test(arguments: [CAMMethod.xgradcam, .hirescam, .gradcamElementwise, .ablationcam])
    func newHeatmapMethodsAreTheLibrarysMaps(method: CAMMethod) async throws {
        try await withServer { service, client in
            let photo = try sample("chelsea.png")
            let query = method.rawValue.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? method.rawValue
            let r = try await client.post("/heatmap?format=json&method=\(query)", image: photo)
            #expect(r.status == .ok, "\(r.text)")
            #expect(r.header("X-Method") == method.rawValue)
            let session = service.session
            let input = try session.imagePipeline().prepare(photo).input
            let layer = try #require(defaultCAMLayer(of: session.keras))
            let want = try session.network.classActivationMap(
                input, CAMRequest(layerNode: layer.nodeId, scoreNode: session.scoreNode(postActivation: false)), method: method
            ).map
            let got = try #require(try r.json()["heatmap"] as? [Double])
            #expect(got.count == want.heatmap.count)
            let worst = zip(got, want.heatmap).map { abs($0 - Double($1)) }.max() ?? 1
            #expect(worst < 1e-6, "server map differs from the library's by \(worst)")
        }
    }

    /// `metrics=` adds the faithfulness scores as headers and JSON, equal to the library's
    /// for the same map and image; an unknown metric is a 400 naming the allowed ones.
    @Test func heatmapMetricsAreTheLibrarysScores() async throws {
        try await withServer { service, client in
            let photo = try sample("chelsea.png")
            // drop alone: two model passes (deletion and insertion are 51 each; the library's
            // tests check them against NumPy).
            let r = try await client.post("/heatmap?format=json&metrics=drop,drop", image: photo)
            #expect(r.status == .ok, "\(r.text)")
            let body = try r.json()
            let metrics = try #require(body["metrics"] as? [String: Any])
            let session = service.session
            let input = try session.imagePipeline().prepare(photo).input
            let layer = try #require(defaultCAMLayer(of: session.keras))
            let map = try session.network.classActivationMap(
                input, CAMRequest(layerNode: layer.nodeId, scoreNode: session.scoreNode(postActivation: false)), method: .gradcam
            ).map
            let probe = try session.faithfulnessProbe(.image(photo), classIndex: map.classIndex, limits: RenderLimits())
            let want = try session.faithfulness(of: map, probe: probe, metrics: [.drop])
            let drop = try #require(metrics["average_drop"] as? Double)
            #expect(abs(drop - want.averageDrop!) < 1e-9)
            #expect(drop > 0 && drop < 100, "image × map scores lower than the image: \(drop)")
            #expect(metrics["road_combined"] == nil && metrics["deletion_auc"] == nil, "only what was asked")
            #expect(Double(r.header("X-Metric-Average-Drop") ?? "") == Double(String(format: "%.6f", want.averageDrop!)))
            #expect(r.header("X-Metric-Increase-In-Confidence") != nil && r.header("X-Metric-ROAD-Combined") == nil)
            let bad = try await client.post("/heatmap?metrics=deletion,faith", image: photo)
            #expect(bad.status == .badRequest && bad.text.contains("faith") && bad.text.contains("road"), "\(bad.text)")
        }
    }

    /// numerics=fast: its own ETag and an X-Numerics header; the map is the exact one to
    /// rounding (the bundled model has no Winograd-sized layer, so here it is the same map);
    /// predictions and activations take the parameter too.
    @Test func fastNumericsHeatmapSaysSoAndHasItsOwnAddress() async throws {
        try await withServer { _, client in
            let photo = try sample("chelsea.png")
            let exact = try await client.post("/heatmap?format=json", image: photo)
            let fast = try await client.post("/heatmap?format=json&numerics=fast", image: photo)
            let named = try await client.post("/heatmap?format=json&numerics=exact", image: photo)
            #expect(exact.status == .ok && fast.status == .ok && named.status == .ok, "\(fast.text)")
            #expect(fast.header("X-Numerics") == "fast" && exact.header("X-Numerics") == nil)
            #expect(fast.header("ETag") != exact.header("ETag") && named.header("ETag") == exact.header("ETag"))
            let a = try #require(try exact.json()["heatmap"] as? [Double])
            let b = try #require(try fast.json()["heatmap"] as? [Double])
            #expect(a.count == b.count && (zip(a, b).map { abs($0 - $1) }.max() ?? 1) <= 1e-4)
            // The same parameter on the other pictures a model pass makes.
            for uri in ["/api/predict", "/activations"] {
                let plain = try await client.post(uri, image: photo)
                let quick = try await client.post(uri + "?numerics=fast", image: photo)
                #expect(plain.status == .ok && quick.status == .ok, "\(uri): \(quick.text)")
                #expect(quick.header("X-Numerics") == "fast" && plain.header("X-Numerics") == nil, "\(uri)")
                #expect(quick.header("ETag") != plain.header("ETag"), "\(uri)")
                let bad = try await client.post(uri + "?numerics=approximate", image: photo)
                #expect(bad.status == .badRequest && bad.text.contains("exact, fast"), "\(uri): \(bad.text)")
            }
        }
    }

    @Test func smoothedHeatmapsAreTheLibrarysMaps() async throws {
        try await withServer { service, client in
            let photo = try sample("chelsea.png")
            let r = try await client.post("/heatmap?format=json&method=hirescam&eigen_smooth=true&aug_smooth=1", image: photo)
            #expect(r.status == .ok, "\(r.text)")
            let session = service.session
            let input = try session.imagePipeline().prepare(photo).input
            let layer = try #require(defaultCAMLayer(of: session.keras))
            let want = try session.network.classActivationMap(
                input, CAMRequest(layerNode: layer.nodeId, scoreNode: session.scoreNode(postActivation: false)), method: .hirescam,
                options: CAMOptions(eigenSmooth: true, augSmooth: true)
            ).map
            let plain = try session.network.classActivationMap(
                input, CAMRequest(layerNode: layer.nodeId, scoreNode: session.scoreNode(postActivation: false)), method: .hirescam
            ).map
            let got = try #require(try r.json()["heatmap"] as? [Double])
            let worst = zip(got, want.heatmap).map { abs($0 - Double($1)) }.max() ?? 1
            #expect(worst < 1e-6, "server map differs from the library's by \(worst)")
            let change = zip(got, plain.heatmap).map { abs($0 - Double($1)) }.max() ?? 0
            #expect(change > 1e-3, "the options changed the map")
        }
    }

    @Test func postActivationAndItsOlderNameSayWhichScore() async throws {
        try await withServer { _, client in
            let photo = try sample("chelsea.png")
            for (query, kind) in [
                ("", "logit"), ("&post_activation=true", "probability"), ("&post_softmax=true", "probability"),
                ("&post_activation=false&post_softmax=false", "logit"),
            ] {
                let r = try await client.post("/heatmap?format=json\(query)", image: photo)
                #expect(r.status == .ok, "\(query): \(r.text)")
                #expect(r.header("X-Score-Kind") == kind, "\(query)")
                let score = try #require(r.header("X-Score").flatMap(Double.init))
                #expect(kind == "logit" ? score > 1 : (score > 0 && score < 1), "\(query): score \(score)")
            }
        }
    }

    @Test func predictTopFiveLikeTheLibrary() async throws {
        try await withServer { service, client in
            let r = try await client.post("/api/predict?top=3", image: try sample("chelsea.png"))
            #expect(r.status == .ok)
            let top = try #require(try r.json()["top"] as? [[String: Any]])
            #expect(top.count == 3)
            let input = try service.session.imagePipeline().prepare(try sample("chelsea.png")).input
            let expected = try service.session.predict(input, top: 3)
            for (got, want) in zip(top, expected) {
                #expect(got["class"] as? Int == want.classIndex)
                #expect(got["label"] as? String == want.label)
                #expect(abs((got["score"] as? Double ?? -1) - Double(want.score)) < 1e-6)
            }
            #expect(top.first?["label"] as? String == "Egyptian cat")
        }
    }

    @Test func heatmapOverlayAsRawBodyAndAsForm() async throws {
        try await withServer { _, client in
            let photo = try sample("chelsea.png")
            let raw = try await client.post("/heatmap", image: photo)
            #expect(raw.status == .ok)
            #expect(raw.headers[.contentType] == "image/png")
            #expect(raw.header("X-Class") == "285")
            #expect(raw.header("X-Label") == "Egyptian cat")
            #expect(raw.header("X-Layer") == "top_activation")
            #expect(raw.header("X-Method") == "gradcam")
            #expect(Float(raw.header("X-Probability") ?? "") ?? 0 > 0.5)
            let overlay = try decodeImage(raw.data)
            let original = try decodeImage(photo)
            #expect(overlay.width == original.width && overlay.height == original.height)

            let form = try await client.postForm("/heatmap", image: photo)
            #expect(form.status == .ok)
            #expect(form.data == raw.data, "multipart and raw uploads of the same image give the same picture")
            #expect(form.headers[.eTag] == raw.headers[.eTag])
        }
    }

    @Test func heatmapJSONIsTheLibrarysMap() async throws {
        try await withServer { service, client in
            let photo = try sample("coffee.png")
            let r = try await client.post("/heatmap?format=json&method=gradcam%2B%2B&class=cup", image: photo)
            #expect(r.status == .ok, "\(r.text)")
            let obj = try r.json()
            let session = service.session
            let k = try session.resolveClass("cup")
            #expect(obj["class"] as? Int == k)
            #expect(obj["method"] as? String == "gradcam++")
            let input = try session.imagePipeline().prepare(photo).input
            let layer = try #require(defaultCAMLayer(of: session.keras))
            let want = try session.network.classActivationMap(
                input, CAMRequest(layerNode: layer.nodeId, scoreNode: session.scoreNode(postActivation: false), classIndex: k),
                method: .gradcamPlusPlus
            ).map
            let got = try #require(obj["heatmap"] as? [Double])
            #expect(obj["height"] as? Int == want.height && obj["width"] as? Int == want.width)
            #expect(got.count == want.heatmap.count)
            let worst = zip(got, want.heatmap).map { abs($0 - Double($1)) }.max() ?? 1
            #expect(worst < 1e-6, "server map differs from the library's by \(worst)")
            #expect(got.allSatisfy { (0...1).contains($0) })
        }
    }

    @Test func activationsGridChannelAndStatistics() async throws {
        try await withServer { service, client in
            let photo = try sample("chelsea.png")
            let grid = try await client.post("/activations?layer=stem_activation&cols=8", image: photo)
            #expect(grid.status == .ok, "\(grid.text)")
            #expect(grid.header("X-Shape") == "112x112x32")
            let picture = try decodeImage(grid.data)
            let input = try service.session.imagePipeline().prepare(photo).input
            let node = try service.session.layer(named: "stem_activation").nodeId
            let activation = try service.session.network.forward(input, stopAfter: node)[node]!.sample(0)
            let want = try activationGrid(activation, cols: 8)
            #expect(picture == want, "the grid equals the library's picture pixel for pixel")

            let one = try await client.post("/activations?layer=stem_activation&channel=5", image: photo)
            #expect(one.status == .ok)
            #expect(try decodeImage(one.data) == (try activationChannel(activation, channel: 5)))

            let stats = try await client.post("/activations?layer=stem_activation&format=json", image: photo)
            let channels = try #require(try stats.json()["channels"] as? [[String: Any]])
            #expect(channels.count == 32)
            let wantStats = try channelStatistics(activation)
            #expect(abs((channels[3]["mean"] as? Double ?? -1) - Double(wantStats[3].mean)) < 1e-5)
        }
    }

    @Test func filterIsTheLibrarysPictureAndIsCached() async throws {
        try await withServer { service, client in
            let uri = "/filters/stem_activation/3?steps=3"
            let first = try await client.get(uri)
            #expect(first.status == .ok, "\(first.text)")
            #expect(first.header("X-Cache") == "miss")
            var spec = FilterRequest(layer: "stem_activation", first: 3, count: 1)
            spec.steps = 3
            let want = try encodePNG(try service.session.renderFilters(spec).picture)
            #expect(first.data == want, "the server's PNG equals the library's rendering byte for byte")

            let again = try await client.get(uri)
            #expect(again.status == .ok)
            #expect(again.header("X-Cache") == "hit")
            #expect(again.data == first.data)
            let etag = try #require(again.headers[.eTag])
            let conditional = try await client.get(uri, headers: [.ifNoneMatch: etag])
            #expect(conditional.status == .notModified)
            #expect(conditional.body.readableBytes == 0)
        }
    }

    @Test func filterGridIsOneBatchOfTheFirstFilters() async throws {
        try await withServer { service, client in
            let r = try await client.get("/filters/stem_activation?count=4&cols=2&steps=2")
            #expect(r.status == .ok, "\(r.text)")
            var spec = FilterRequest(layer: "stem_activation", first: 0, count: 4)
            (spec.steps, spec.cols) = (2, 2)  // the model's own 224 px, as the route without size=
            #expect(r.data == (try encodePNG(try service.session.renderFilters(spec).picture)))
        }
    }

    @Test func resultsSurviveARestartFromTheDiskCache() async throws {
        let cacheDir = temporaryDirectory("restart").path
        let settings = testSettings { $0.cacheDir = cacheDir }
        let first = try await withServer(settings) { _, client in
            let r = try await client.get("/filters/stem_activation/1?steps=2")
            #expect(r.status == .ok)
            #expect(r.header("X-Cache") == "miss")
            return r.data
        }
        // No temporary files are left next to the results.
        let files = FileManager.default.enumerator(atPath: cacheDir)?.allObjects as? [String] ?? []
        #expect(files.contains { $0.hasSuffix(".png") })
        #expect(!files.contains { $0.hasSuffix(".tmp") })
        try await withServer(settings) { _, client in
            let r = try await client.get("/filters/stem_activation/1?steps=2&wait=0")
            #expect(r.status == .ok, "a restarted server answers from the disk cache at once")
            #expect(r.header("X-Cache") == "hit")
            #expect(r.data == first)
        }
    }

    @Test func postETagsAreContentAddresses() async throws {
        try await withServer { _, client in
            let a = try await client.post("/heatmap?alpha=0.5", image: try sample("chelsea.png"))
            let b = try await client.post("/heatmap?alpha=0.5", image: try sample("chelsea.png"))
            let c = try await client.post("/heatmap?alpha=0.6", image: try sample("chelsea.png"))
            let d = try await client.post("/heatmap?alpha=0.5", image: try sample("coffee.png"))
            let tag = try #require(a.headers[.eTag])
            #expect(tag.hasPrefix("\"") && tag.hasSuffix("\""), "a strong ETag")
            #expect(b.headers[.eTag] == tag)
            #expect(c.headers[.eTag] != tag && d.headers[.eTag] != tag)
            let conditional = try await client.post("/heatmap?alpha=0.5", image: try sample("chelsea.png"), headers: [.ifNoneMatch: tag])
            #expect(conditional.status == .preconditionFailed)
            #expect(try conditional.error().code == "not_modified")
        }
    }

    @Test func metricsCountRequestsQueueAndCache() async throws {
        try await withServer { _, client in
            _ = try await client.post("/api/predict", image: try sample("chelsea.png"))
            _ = try await client.get("/filters/stem_activation/2?steps=1")
            _ = try await client.get("/filters/stem_activation/2?steps=1")
            _ = try await client.get("/filters/nope/1")
            let text = try await client.get("/metrics").text
            #expect(text.contains(#"convlens_http_requests_total{route="/api/predict",method="POST",status="200"} 1"#))
            #expect(text.contains(#"convlens_http_requests_total{route="/filters/{layer}/{index}",method="GET",status="404"} 1"#))
            #expect(text.contains("convlens_http_request_duration_seconds_bucket"))
            #expect(text.contains("convlens_cache_hits_total 1"))
            #expect(text.contains("convlens_cache_misses_total 1"))
            #expect(text.contains("convlens_queue_depth 0"))
            #expect(text.contains("convlens_running_jobs 0"))
            #expect(text.contains(#"convlens_job_duration_seconds_count{kind="filter",state="done"} 1"#))
        }
    }

    @Test func galleryPageAndOpenAPIAreServed() async throws {
        try await withServer { _, client in
            let page = try await client.get("/")
            #expect(page.status == .ok)
            #expect(page.text.contains("<html"))
            let spec = try await client.get("/openapi.yaml")
            #expect(spec.status == .ok)
            #expect(spec.text.hasPrefix("openapi: 3.1"))
            #expect(spec.headers[.contentType]?.hasPrefix("application/yaml") == true)
        }
    }
}
