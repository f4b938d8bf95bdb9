import Foundation
import TestSupport
import Testing

// The `convlens` executable as a user runs it: real files in, exit codes,
// messages and outputs checked.

private struct Run {
    let status: Int32
    let stdout: Data
    let stderr: String
    var text: String { String(decoding: stdout, as: UTF8.self) }
}

private func convlens(_ args: [String]) throws -> Run {
    let p = Process()
    p.executableURL = executable
    p.arguments = args
    p.currentDirectoryURL = root
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(status: p.terminationStatus, stdout: o, stderr: String(decoding: e, as: UTF8.self))
}

/// A little-endian float32 .npy (format 1.0) as NumPy writes it.
private func float32NPY(_ url: URL) throws -> [Float] {
    let data = try Data(contentsOf: url)
    let start = 10 + Int(data[8]) + Int(data[9]) << 8
    return stride(from: start, to: data.count, by: 4).map { o in
        Float(bitPattern: data[o..<(o + 4)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) })
    }
}

private func temporary(_ name: String) -> String {
    scratchURL("cli", suffix: "." + name).path
}

@Suite(.serialized) struct CLITests {
    @Test func predictLabelsTheCatWithTheBundledModel() throws {
        let r = try convlens(["predict", "--input", "public/samples/chelsea.png", "--json", "--threads", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: r.stdout) as! [String: Any]
        let top = obj["top"] as! [[String: Any]]
        #expect(top.first?["class"] as? Int == 285)
        #expect(top.first?["label"] as? String == "Egyptian cat")
        #expect((obj["output"] as! [Double]).count == 1000)
    }

    @Test func summaryListsEveryLayerWithSpatialFlags() throws {
        let r = try convlens(["summary", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: r.stdout) as! [String: Any]
        let layers = obj["layers"] as! [[String: Any]]
        #expect(layers.count == 149)
        #expect(layers.contains { $0["name"] as? String == "top_activation" && $0["isSpatial"] as? Bool == true })
        #expect(layers.contains { $0["name"] as? String == "predictions" && $0["isSpatial"] as? Bool == false })
    }

    /// A user's grey model: the summary says how photos go in and why raw pixels; a colour
    /// photo gives a heatmap the size of the photo.
    @Test func aUsersGreyModelSaysHowPhotosGoInAndAnswersAHeatmap() throws {
        let model = "Tests/Fixtures/keras_layers/grey_mnist.keras"
        let summary = try convlens(["summary", "--model", model])
        #expect(summary.status == 0, "\(summary.stderr)")
        let text = String(decoding: summary.stdout, as: UTF8.self)
        #expect(text.contains("Photos go in: grey, 28×28") && text.contains("'rescale'"), "\(text)")
        let out = temporary("grey.png")
        let r = try convlens(["heatmap", "--model", model, "--input", "public/samples/chelsea.png", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        // IHDR: width and height, big-endian, at bytes 16 and 20.
        let be = { (at: Int) in png[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        #expect(png.count > 24 && be(16) == 451 && be(20) == 300)
    }

    @Test func heatmapWritesAnOverlayTheSizeOfThePhoto() throws {
        let out = temporary("overlay.png")
        let r = try convlens(["heatmap", "--input", "public/samples/coffee.png", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("class 967 (espresso)"))
        let png = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        // IHDR width and height: the original 600×400 photo.
        let be = { (o: Int) in png[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
        #expect(be(16) == 600 && be(20) == 400)
    }

    /// A model saved with a fixed 32×32 input and a Flatten head: `--size` is honoured for a
    /// convolution and refused by name for a layer behind the Flatten.
    @Test func filtersAtAnotherSizeOfAFixedInputModel() throws {
        let model = "Tests/Fixtures/visualization/anysize/fixed_head.k3.h5"
        let out = temporary("size.png")
        let r = try convlens(["filters", "--model", model, "--layer", "conv3", "--index", "5", "--size", "48", "--steps", "3", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("at 48x48"), "\(r.stderr)")
        let png = try Data(contentsOf: URL(fileURLWithPath: out))
        let be = { (o: Int) in png[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
        #expect(be(16) == 48 && be(20) == 48, "IHDR: 48×48")
        let refused = try convlens(["filters", "--model", model, "--layer", "fc1", "--size", "48", "-o", out])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("'flatten' (Flatten)") && refused.stderr.contains("size=30...33"), "\(refused.stderr)")
    }

    /// `examples` over the sample photos and `evaluate` on one: real commands, real outputs.
    @Test func examplesAreTheFiltersTopImagesWithTheirBoxes() throws {
        let r = try convlens([
            "examples", "--images", "public/samples", "--layer", "stem_activation", "--index", "5", "--k", "3", "--format", "json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [[String: Any]])
        #expect(list.count == 3)
        let values = list.compactMap { $0["value"] as? Double }
        #expect(values == values.sorted(by: >), "best first: \(values)")
        #expect(Set(list.compactMap { $0["image"] as? String }).count == 3, "one example per image")
        for e in list {
            let box = try #require(e["box"] as? [Int])
            // stem_conv is 3×3 stride 2: a 112×112 map whose fields are at most 3×3 pixels of the 224×224 input.
            #expect(box.count == 4 && box[0] >= 0 && box[1] >= 0 && box[2] <= 223 && box[3] <= 223)
            #expect(box[2] - box[0] <= 2 && box[3] - box[1] <= 2)
        }
        let out = temporary("examples.png")
        let png = try convlens([
            "examples", "--images", "public/samples", "--layer", "stem_activation", "--index", "5", "--k", "3", "-o", out,
        ])
        #expect(png.status == 0, "\(png.stderr)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: out)).prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
        let bad = try convlens([
            "examples", "--images", "public/samples", "--layer", "stem_activation", "--index", "32", "--format", "json",
        ])
        #expect(bad.status != 0 && bad.stderr.contains("outside 0..<32"), "\(bad.stderr)")
    }

    @Test func evaluatePrintsMethodByMetric() throws {
        let r = try convlens([
            "evaluate", "--input", "public/samples/chelsea.png", "--methods", "gradcam,layercam", "--metrics", "drop", "--format", "json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let body = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let rows = try #require(body["rows"] as? [[String: Any]])
        #expect(rows.count == 2 && rows.allSatisfy { $0["class"] as? Int == 285 })
        let summary = try #require(body["summary"] as? [[String: Any]])
        #expect(Set(summary.compactMap { $0["metric"] as? String }) == ["average_drop", "increase_in_confidence"])
        let bad = try convlens(["evaluate", "--input", "public/samples/chelsea.png", "--metrics", "faith"])
        #expect(bad.status != 0 && bad.stderr.contains("unknown metric 'faith'"), "\(bad.stderr)")
    }

    @Test func activationsWriteTheRawLayerOutput() throws {
        let out = temporary("a.npy")
        let r = try convlens([
            "activations", "--input", "public/samples/chelsea.png", "--layer", "stem_activation",
            "--format", "npy", "-o", out,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(String(decoding: data.prefix(80), as: UTF8.self).contains("'shape': (1, 112, 112, 32)"))
    }

    @Test func gradientAndHeatmapTakeSegmentationAndDecreaseTargets() throws {
        // Tests/Fixtures/visualization/targets (tools/fixtures/make_target_fixtures.py): the
        // gradient of class 2 of the segmenter over the cells a region of the photo covers, and
        // of the regressor's negated output, are TensorFlow's.
        let folder = "Tests/Fixtures/visualization/targets/"
        func gradient(_ model: String, _ flags: [String]) throws -> [Float] {
            let r = try convlens(
                ["gradient", "--model", folder + model, "--input", folder + "photo.png", "--format", "json", "--threads", "1"] + flags)
            #expect(r.status == 0, "\(r.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
            return (obj["data"] as? [Double] ?? []).map(Float.init)
        }
        func within(_ ours: [Float], _ reference: String) throws -> Bool {
            let keras = try float32NPY(root.appendingPathComponent(folder + reference))
            // 1e-4 × (1 + max), relative for arrays below 1 (the regressor's input gradient is
            // ~1e-5: 1 + max would not tell it from its negative).
            let top = keras.map(abs).max()!
            let bound = 1e-4 * (top < 1 ? top : 1 + top)
            return ours.count == keras.count && zip(ours, keras).allSatisfy { abs($0 - $1) <= bound }
        }
        let region = try gradient("tiny_segmenter.keras", ["--class", "2", "--region", "4,8,21,27", "--wrt", "last_conv"])
        #expect(try within(region, "seg.class2.region.grad.last_conv.npy"))
        #expect(try !within(region, "seg.class2.grad.last_conv.npy"), "without the region: class 2's argmax cells")
        #expect(try within(try gradient("tiny_segmenter.h5", ["--class", "2", "--wrt", "last_conv"]), "seg.class2.grad.last_conv.npy"))
        let down = try gradient("tiny_regressor.keras", ["--output-index", "0", "--target", "decrease", "--wrt", "input"])
        #expect(try within(down, "reg.decrease.grad.input.npy"))
        #expect(try !within(down, "reg.increase.grad.input.npy"))
        let outside = try convlens([
            "gradient", "--model", folder + "tiny_segmenter.keras", "--input", folder + "photo.png", "--class", "2", "--region",
            "0,0,40,8", "--wrt", "input", "--format", "json",
        ])
        #expect(outside.status != 0 && outside.stderr.contains("region=0,0,40,8"), "\(outside.stderr)")

        let out = temporary("grid.png")
        let grid = try convlens([
            "heatmap", "--model", folder + "tiny_segmenter.keras", "--input", folder + "photo.png", "--classes", "0,2", "-o", out,
        ])
        #expect(grid.status == 0 && grid.stderr.contains("classes 0,2"), "\(grid.stderr)")
        let png = try Data(contentsOf: URL(fileURLWithPath: out))
        // The PNG's IHDR width: two 32 px tiles 4 px apart.
        #expect(png.count > 24 && png[16..<20].reduce(0) { $0 << 8 | Int($1) } == 68)
    }

    @Test func gradientOfASigmoidHeadIsTheLogitsUnlessPostActivation() throws {
        // The Keras 2 binary classifier of Tests/Fixtures/visualization/sigmoid: the default
        // gradient is Keras' gradient of the logit, --post-activation (and its older name
        // --post-softmax) the probability's (0.018× at p = 0.98).
        let folder = "Tests/Fixtures/visualization/sigmoid/"
        func gradient(_ flags: [String]) throws -> [Float] {
            let r = try convlens(
                [
                    "gradient", "--model", folder + "binary_convnet.k2.h5", "--input", folder + "img0.input.npy",
                    "--output-index", "0", "--wrt", "last_conv", "--format", "json", "--threads", "1",
                ] + flags)
            #expect(r.status == 0, "\(r.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
            #expect(obj["shape"] as? [Int] == [1, 4, 4, 16])
            return (obj["data"] as? [Double] ?? []).map(Float.init)
        }
        /// A little-endian float32 .npy (format 1.0) as written by NumPy.
        func npy(_ name: String) throws -> [Float] {
            let data = try Data(contentsOf: root.appendingPathComponent(folder + name))
            let start = 10 + Int(data[8]) + Int(data[9]) << 8
            return stride(from: start, to: data.count, by: 4).map { o in
                Float(bitPattern: data[o..<(o + 4)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) })
            }
        }
        func relativeError(_ ours: [Float], _ keras: [Float]) -> Float {
            guard ours.count == keras.count else { return .infinity }
            return zip(ours, keras).map { abs($0 - $1) }.max()! / keras.map(abs).max()!
        }
        let logit = try npy("img0.logit.grad.last_conv.npy")
        let probability = try npy("img0.probability.grad.last_conv.npy")
        #expect(relativeError(try gradient([]), logit) <= 1e-4)
        #expect(relativeError(try gradient(["--post-activation"]), probability) <= 1e-4)
        #expect(relativeError(try gradient(["--post-softmax"]), probability) <= 1e-4)
        #expect(relativeError(logit, probability) > 0.5, "the two references are far apart")
    }

    @Test(
        arguments: [
            (["predict", "--model", "no/such/model.h5", "--input", "public/samples/chelsea.png"], "model file not found"),
            (["predict", "--model", "Tests/Fixtures/keras/bad_text.h5", "--input", "public/samples/chelsea.png"], "not an HDF5"),
            (["predict", "--input", "README.md"], "neither a PNG/JPEG image nor a .npy"),
            (
                ["activations", "--input", "public/samples/chelsea.png", "--layer", "no_such_layer", "-o", "/tmp/x.png"],
                "no layer named 'no_such_layer'"
            ),
            (["heatmap", "--input", "public/samples/chelsea.png", "--class", "1000", "-o", "/tmp/x.png"], "out of range"),
            (["heatmap", "--input", "public/samples/chelsea.png", "--alpha", "abc", "-o", "/tmp/x.png"], "alpha"),
            (
                ["heatmap", "--input", "public/samples/chelsea.png", "--layer", "predictions", "-o", "/tmp/x.png"],
                "not a spatial feature map"
            ),
            (["filters", "--layer", "stem_activation", "--index", "32", "-o", "/tmp/x.png"], "out of range"),
        ] as [([String], String)])
    func badInputFailsWithAClearMessage(args: [String], message: String) throws {
        let r = try convlens(args)
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
    }

    @Test func corruptImageIsAnErrorNotACrash() throws {
        let bad = temporary("cut.png")
        let photo = try Data(contentsOf: root.appendingPathComponent("public/samples/chelsea.png"))
        try photo.prefix(photo.count / 2).write(to: URL(fileURLWithPath: bad))
        let r = try convlens(["predict", "--input", bad])
        #expect(r.status == 1, "a crash would be a signal status: \(r.status)")
        #expect(r.stderr.lowercased().contains("corrupt"), "stderr: \(r.stderr)")
    }
}

extension CLITests {
    @Test func overviewDrawsARowPerSpatialLayer() throws {
        let out = temporary("overview.png")
        let r = try convlens(["activations", "--input", "public/samples/chelsea.png", "--overview", "--overview-channels", "4", "-o", out])
        #expect(r.status == 0, "\(r.stderr)")
        let png = try Data(contentsOf: URL(fileURLWithPath: out))
        let be = { (o: Int) in png[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
        // 4 cells of 64 px with 2-px margins across; many layer rows down.
        #expect(be(16) == 4 * 64 + 3 * 2)
        #expect(be(20) > 20 * 64)
        let bad = try convlens(["activations", "--input", "public/samples/chelsea.png", "-o", out])
        #expect(bad.status != 0 && bad.stderr.contains("--layer"))
    }

    /// The bench suite's heatmap line goes through a real `convlens serve` child over
    /// loopback; without --python there is no peer and the JSON says so with nulls.
    @Test func benchSuiteTimesTheHeatmapRequestThroughARealServer() throws {
        let r = try convlens([
            "bench", "--suite", "all", "--sections", "heatmap,forward", "--requests", "2", "--runs", "1", "--threads", "1", "--repeat", "2",
            "--json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONSerialization.jsonObject(with: r.stdout) as! [String: Any]
        #expect((report["machine"] as? String)?.contains("GFLOP/s") == true)
        let lines = report["lines"] as! [[String: Any]]
        let stages = ["decode", "prepare", "gradcam", "overlay", "encode"].map { "heatmap_stage_\($0)" }
        #expect(lines.map { $0["line"] as? String } == ["heatmap_http"] + stages + ["forward"])
        let heatmap = lines[0]
        // Each stage of the request timed in-process, none with a peer.
        for stage in lines[1...stages.count] {
            #expect((stage["convlens_ms"] as? Double ?? 0) > 0 && stage["peer"] is NSNull, "\(stage)")
        }
        #expect((heatmap["convlens_ms"] as? Double ?? 0) > 0)
        // The server child's own peak resident set: it holds the model, so well above 20 MiB.
        #expect((heatmap["convlens_peak_rss_mib"] as? Double ?? 0) > 20)
        #expect(heatmap["peer"] is NSNull && heatmap["ratio"] is NSNull)
        let forward = try #require(lines.last)
        #expect((forward["model"] as? String)?.hasSuffix("(bundled)") == true)
        // Timed in child processes, two rounds: the line says so and has a time and a memory figure.
        #expect((forward["work"] as? String)?.hasSuffix("median of 2 alternated rounds") == true, "\(forward)")
        #expect((forward["convlens_ms"] as? Double ?? 0) > 0 && (forward["convlens_peak_rss_mib"] as? Double ?? 0) > 20)
        #expect(forward["section"] as? String == "forward")
        #expect(r.stderr.contains("heatmap_http"))

        let bad = try convlens(["bench", "--suite", "all", "--sections", "heatmap,bogus"])
        #expect(bad.status != 0 && bad.stderr.contains("unknown part 'bogus'"))
        let badRepeat = try convlens(["bench", "--suite", "all", "--sections", "forward", "--repeat", "0"])
        #expect(badRepeat.status != 0 && badRepeat.stderr.contains("--repeat must be 1...20"))
        let badSuite = try convlens(["bench", "--suite", "some"])
        #expect(badSuite.status != 0 && badSuite.stderr.contains("--suite takes all"))
    }
}
