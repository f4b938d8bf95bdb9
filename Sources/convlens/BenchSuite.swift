import Engine
import Foundation
import Imaging
import KerasFormat
import Visualization

/// One line of the bench: ConvLens' time and its peer's for the same work, in the same run.
struct BenchLine: Encodable {
    /// The part of `--suite all` that ran it (`BenchSuite.Section`); nil outside the suite.
    var section: String?
    var line: String
    var model: String
    /// What was timed, in words (sizes, steps, batch).
    var work: String
    var convlensMs: Double
    /// Who did the same work: "tensorflow" or "tf-keras-vis"; nil when no peer ran.
    var peer: String?
    var peerMs: Double?
    /// Peak resident memory while the line ran (ConvLens: this process, its peak reset
    /// before the line, or the server's; the peer: its whole process).
    var convlensPeakRSSMiB: Double?
    var peerPeakRSSMiB: Double?
    var ratio: Double? { peerMs.map { convlensMs / $0 } }

    enum CodingKeys: String, CodingKey {
        case section, line, model, work, convlensMs, peer, peerMs, ratio, convlensPeakRSSMiB = "convlens_peak_rss_mib",
            peerPeakRSSMiB = "peer_peak_rss_mib"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(section, forKey: .section)
        try c.encode(line, forKey: .line)
        try c.encode(model, forKey: .model)
        try c.encode(work, forKey: .work)
        try c.encode(convlensMs, forKey: .convlensMs)
        try c.encode(peer, forKey: .peer)
        try c.encode(peerMs, forKey: .peerMs)
        try c.encode(ratio, forKey: .ratio)
        try c.encode(convlensPeakRSSMiB, forKey: .convlensPeakRSSMiB)
        try c.encode(peerPeakRSSMiB, forKey: .peerPeakRSSMiB)
    }
}

/// `convlens bench --suite all`: every figure issue 14 asks about, ConvLens next to its
/// peer in one run on one machine — the heatmap request end to end over HTTP, the forward
/// pass of the bundled model and of every model in `--models`, Grad-CAM and the ascent
/// step at batch 1 and 64, a 64-filter book grid, lucid and Score-CAM. Each peer is a
/// script under tools/bench run by `--python` (so the suite runs from the checkout).
struct BenchSuite {
    enum Section: String, CaseIterable {
        case heatmap, forward, lines, grid, lucid, scorecam
    }

    var python: String?
    var threads: Int
    var runs: Int
    var bigBatch: Int
    /// The model of the Grad-CAM, ascent, grid and lucid lines (VGG16 for the issue's
    /// figures); nil: the bundled model.
    var modelPath: String?
    /// A folder of Keras files (check_applications.py's output) whose forward passes are timed.
    var modelsDir: String?
    var sections: [Section]
    var requests: Int
    /// Rounds of each forward line (ConvLens and TensorFlow alternated; medians of the rounds).
    var rounds = 1
    var image = "public/samples/chelsea.png"

    func run() throws -> [BenchLine] {
        var lines: [BenchLine] = []
        func add(_ section: Section, _ new: [BenchLine]) {
            for var l in new {
                l.section = section.rawValue
                lines.append(l)
                printErr(
                    "\(l.line) \(l.model): ConvLens \(fmt(l.convlensMs)) ms"
                        + (l.peerMs.map { ", \(l.peer ?? "peer") \(fmt($0)) ms, ratio \(String(format: "%.2f", l.convlensMs / $0))" } ?? "")
                )
            }
        }
        let bundled = try ModelOptions.parse(["--threads", String(threads)]).load()
        if sections.contains(.heatmap) { add(.heatmap, try heatmapOverHTTP(bundled) + heatmapStages(bundled)) }
        if sections.contains(.forward) {
            add(.forward, [try forward(path: nil, name: "\(bundled.profile.name) (bundled)", peerPath: bundled.profile.modelURL.path)])
            for (name, path) in try modelFiles() { add(.forward, [try forward(path: path, name: name, peerPath: path)]) }
        }
        if sections.contains(.scorecam) { add(.scorecam, [try scoreCAM(bundled)]) }
        let needsModel = sections.contains(.lines) || sections.contains(.grid) || sections.contains(.lucid)
        if needsModel {
            let m = try modelPath.map { try ModelOptions.parse(["--model", $0]).load() } ?? bundled
            let layers = try BenchLayers(m)
            if sections.contains(.lines) {
                let measured = try coreLines(m, layers: layers, runs: runs, bigBatch: bigBatch)
                let reference = python.flatMap { python in
                    peerResult(m.profile.name) {
                        try runKeras(
                            python: python, modelPath: m.profile.modelURL.path, threads: threads, batch: bigBatch,
                            layers: ["--cam-layer", layers.camName, "--layer", layers.ascentName])
                    }
                }
                add(
                    .lines,
                    measured.lines.map { l in
                        var l = l
                        l.peer = reference == nil ? nil : "tensorflow"
                        l.peerMs = reference?[peerLineName(l.line)]
                        l.convlensPeakRSSMiB = l.line == "ascent_step_b\(bigBatch)" ? measured.peakRSSBig : measured.peakRSSBatch1
                        l.peerPeakRSSMiB = l.line == "ascent_step_b\(bigBatch)" ? reference?["peak_rss"] : reference?["peak_rss_b1"]
                        return l
                    })
            }
            if sections.contains(.grid) { add(.grid, [try filterGrid(m, layer: layers.ascentName)]) }
            if sections.contains(.lucid) { add(.lucid, [try lucid(m, layer: layers.ascentName)]) }
        }
        return lines
    }

    // MARK: the lines

    /// POST /heatmap of the sample photo to a `convlens serve` child on loopback (bundled
    /// model), `requests` sequential requests on one connection after three warm-ups, p50;
    /// the peer decodes, resizes, runs forward + tape, Grad-CAM, the overlay and PNG level 1
    /// in-process (tools/bench/bench_heatmap_keras.py).
    func heatmapOverHTTP(_ bundled: OpenedModel) throws -> [BenchLine] {
        let server = try ServeChild(threads: threads)
        defer { server.stop() }
        let photo = try Data(contentsOf: URL(fileURLWithPath: image))
        let client = HTTPUploadClient(port: server.port, path: "/heatmap", field: "image", file: photo, name: "chelsea.png")
        for _ in 0..<3 { try client.post() }
        var ms: [Double] = []
        for _ in 0..<requests { ms.append(try client.post()) }
        let p50 = ms.sorted()[ms.count / 2]
        var line = BenchLine(
            line: "heatmap_http", model: bundled.profile.name,
            work:
                "POST /heatmap \(URL(fileURLWithPath: image).lastPathComponent), Grad-CAM overlay PNG, p50 of \(requests) on one connection",
            convlensMs: p50, convlensPeakRSSMiB: server.peakRSSMiB())
        if let python {
            let peer = peerLines(
                python, "tools/bench/bench_heatmap_keras.py",
                ["--png-level", "1", "--runs", String(requests), "--threads", String(threads), "--image", image])
            line.peer = peer.isEmpty ? nil : "tensorflow"
            line.peerMs = peer.first?["median_ms"] as? Double
            line.peerPeakRSSMiB = peer.first?["peak_rss_mib"] as? Double
        }
        return [line]
    }

    /// The heatmap request's stages in this process, each timed on its own (medians of
    /// `requests` runs): where the time of the HTTP line goes, without a peer.
    func heatmapStages(_ bundled: OpenedModel) throws -> [BenchLine] {
        let s = bundled.session
        let data = try Data(contentsOf: URL(fileURLWithPath: image))
        let limits = RenderLimits()
        let options = DecodeOptions(maxPixels: limits.maxImagePixels, layout: .rgb)
        let photo = try decodeImage(data, options: options)
        let pipeline = try s.imagePipeline()
        let x = try pipeline.prepare(photo).input
        let request = CAMRequest(layerNode: s.defaultCAMLayer?.nodeId ?? 0, scoreNode: s.scoreNode(postActivation: false))
        let map = try s.network.classActivationMap(x, request, method: .gradcam, options: CAMOptions()).map
        let base = try fitted(photo, maxPixels: limits.maxOverlayPixels)
        let overlay = try camOverlay(map, on: base)
        let name = URL(fileURLWithPath: image).lastPathComponent
        let stages: [(String, String, () throws -> Void)] = [
            ("decode", "\(name), \(photo.width)×\(photo.height)", { _ = try decodeImage(data, options: options) }),
            ("prepare", "resize to \(pipeline.width)×\(pipeline.height), preprocess", { _ = try pipeline.prepare(photo) }),
            (
                "gradcam", "forward + backward to \(s.defaultCAMLayer?.name ?? "?"), the map",
                { _ = try s.network.classActivationMap(x, request, method: .gradcam, options: CAMOptions()) }
            ),
            ("overlay", "upsample, jet, blend at \(base.width)×\(base.height)", { _ = try camOverlay(map, on: base) }),
            ("encode", "PNG, fast", { _ = try encodePNG(overlay, fast: true) }),
        ]
        return try stages.map { stage, work, body in
            BenchLine(line: "heatmap_stage_\(stage)", model: bundled.profile.name, work: work, convlensMs: try time(requests, body))
        }
    }

    /// One model's forward pass, timed in a `convlens bench --forward-only` child of its own:
    /// TensorFlow's side is a fresh process per model, and one process that had loaded
    /// thirty models before (its heap, its oneDNN caches) timed the later ones up to twice
    /// as slow as a fresh one (NASNetMobile 34 vs 16 ms). `path` nil: the bundled model,
    /// whose file `peerPath` names for TensorFlow.
    func forward(path: String?, name: String, peerPath: String) throws -> BenchLine {
        let executable = try thisExecutable()
        var ours: [Double] = []
        var theirs: [Double] = []
        var size: [Int] = []
        var rss: Double?
        var peerRSS: Double?
        for _ in 0..<max(1, rounds) {
            let child = try runJSONLines(
                executable,
                ["bench", "--forward-only", "--json", "--runs", String(runs), "--threads", String(threads)]
                    + (path.map { ["--model", $0] } ?? []))
            guard let measured = child.first(where: { $0["line"] as? String == "forward" }), let ms = measured["ms_median"] as? Double
            else { throw CLIError("convlens bench --forward-only on \(name) printed no forward line") }
            ours.append(ms)
            size = (measured["input"] as? [Int]) ?? []
            rss = max(rss ?? 0, measured["peak_rss_mib"] as? Double ?? 0)
            if let python,
                let tf = peerResult(
                    name,
                    {
                        try runKeras(python: python, modelPath: peerPath, threads: threads, batch: 1, only: ["forward"], runs: runs)
                    }), let ms = tf["forward"]
            {
                theirs.append(ms)
                peerRSS = max(peerRSS ?? 0, tf["peak_rss"] ?? 0)
            }
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let roundsText = rounds > 1 ? ", median of \(rounds) alternated rounds" : ""
        var line = BenchLine(
            line: "forward", model: name, work: "batch 1, \(size.map(String.init).joined(separator: "×"))\(roundsText)",
            convlensMs: median(ours), convlensPeakRSSMiB: rss)
        if !theirs.isEmpty {
            line.peer = "tensorflow"
            line.peerMs = median(theirs)
            line.peerPeakRSSMiB = peerRSS
        }
        return line
    }

    /// The issue's filter grid: 64 filters of the ascent layer, 150 px, 40 book steps, one
    /// batch, in fast numerics (Winograd where it applies; the issue's bound is for fast);
    /// the peer is the book's loop batched in a tf.function (bench_filters_keras.py).
    func filterGrid(_ m: OpenedModel, layer: String) throws -> BenchLine {
        try filterLine(
            m, name: "filter_grid_64", layer: layer, method: .book, numerics: .fast, count: 64, steps: 40, size: 150,
            peerScript: "tools/bench/bench_filters_keras.py", peerArguments: ["--only", "book_batched"])
    }

    /// Lucid, 4 filters of the ascent layer in one batch, 224 px, 256 steps; the peer is
    /// the same parameterisation, transforms and Adam in TensorFlow (bench_lucid_keras.py).
    func lucid(_ m: OpenedModel, layer: String) throws -> BenchLine {
        try filterLine(
            m, name: "lucid_4x256", layer: layer, method: .lucid, numerics: .exact, count: 4, steps: 256, size: 224,
            peerScript: "tools/bench/bench_lucid_keras.py", peerArguments: [])
    }

    /// One filter job of `count` filters in one batch, timed once (it takes seconds), next to
    /// a peer script that takes the same flags and prints {"seconds", "peak_rss_mb"}.
    private func filterLine(
        _ m: OpenedModel, name: String, layer: String, method: FilterMethod, numerics: Numerics, count: Int, steps: Int, size: Int,
        peerScript: String, peerArguments: [String]
    ) throws -> BenchLine {
        var request = FilterRequest(layer: layer, first: 0, count: count)
        request.method = method
        request.numerics = numerics
        request.steps = steps
        request.size = size
        resetPeakRSS()
        let ms = try timeOnce { _ = try m.session.renderFilters(request) }
        var line = BenchLine(
            line: name, model: m.profile.name,
            work: "\(layer), \(count) filters in one batch, \(size) px, \(steps) \(method.rawValue) steps, \(numerics.rawValue) numerics",
            convlensMs: ms, convlensPeakRSSMiB: peakRSSMiB())
        if let python {
            let peer = peerLines(
                python, peerScript,
                [
                    "--model", m.profile.modelURL.path, "--layer", layer, "--count", String(count), "--steps", String(steps), "--size",
                    String(size), "--threads", String(threads),
                ] + peerArguments)
            line.peer = peer.isEmpty ? nil : "tensorflow"
            line.peerMs = (peer.first?["seconds"] as? Double).map { $0 * 1000 }
            line.peerPeakRSSMiB = peer.first?["peak_rss_mb"] as? Double
        }
        return line
    }

    /// Score-CAM of the sample photo at the bundled model's default layer (every channel
    /// masked in turn, batches of 16); the peer is tf-keras-vis's Scorecam
    /// (bench_scorecam_keras.py), the issue's reference.
    func scoreCAM(_ bundled: OpenedModel) throws -> BenchLine {
        var request = HeatmapRequest()
        request.method = .scorecam
        let input = try renderInput(image)
        resetPeakRSS()
        let ms = try timeOnce { _ = try bundled.session.render(request, input: input) }
        let layer = bundled.session.defaultCAMLayer?.name ?? "?"
        var line = BenchLine(
            line: "scorecam", model: bundled.profile.name,
            work: "\(URL(fileURLWithPath: image).lastPathComponent) at \(layer), all channels",
            convlensMs: ms, convlensPeakRSSMiB: peakRSSMiB())
        if let python {
            let peer = peerLines(
                python, "tools/bench/bench_scorecam_keras.py", ["--image", image, "--layer", layer, "--threads", String(threads)])
            line.peer = peer.isEmpty ? nil : "tf-keras-vis"
            line.peerMs = peer.first?["ms_median"] as? Double
            line.peerPeakRSSMiB = peer.first?["peak_rss_mb"] as? Double
        }
        return line
    }

    /// A peer script's JSON lines, or none when it failed: one model TensorFlow cannot run
    /// must not cost the rest of a long run; the failure is printed and the line has no peer.
    func peerLines(_ python: String, _ script: String, _ arguments: [String]) -> [[String: Any]] {
        peerResult(script) { try runPython(python, script, arguments) } ?? []
    }

    func peerResult<T>(_ what: String, _ body: () throws -> T) -> T? {
        do { return try body() } catch {
            printErr("peer failed for \(what): \(error)")
            return nil
        }
    }

    /// `--models DIR`: its .keras files (check_applications.py writes one per
    /// keras.applications model), else its .h5 files; sorted by name.
    func modelFiles() throws -> [(name: String, path: String)] {
        guard let modelsDir else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: modelsDir).sorted()
        let keras = names.filter { $0.hasSuffix(".keras") }
        let chosen = keras.isEmpty ? names.filter { $0.hasSuffix(".h5") } : keras
        guard !chosen.isEmpty else { throw CLIError("--models \(modelsDir): no .keras or .h5 files") }
        return chosen.map { (URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent, modelsDir + "/" + $0) }
    }
}

/// The layers the Grad-CAM and ascent lines use: VGG16's when present (the lines the
/// issues quote), else the model's default Grad-CAM layer and its middle gallery convolution.
struct BenchLayers {
    var camName: String
    var ascentName: String

    init(_ m: OpenedModel) throws {
        let galleryMiddle = m.session.galleryLayers.isEmpty ? nil : m.session.galleryLayers[m.session.galleryLayers.count / 2]
        guard let cam = m.network.layerIndex["block5_conv3"] != nil ? "block5_conv3" : m.session.defaultCAMLayer?.name,
            let ascent = m.network.layerIndex["block3_conv1"] != nil ? "block3_conv1" : galleryMiddle?.target.name
        else { throw CLIError("the model has no convolution to time Grad-CAM and ascent on") }
        camName = cam
        ascentName = ascent
    }
}

func fmt(_ ms: Double) -> String { String(format: ms >= 100 ? "%.0f" : "%.1f", ms) }

/// The input shape a bench line times: the model's, an open size at 224×224 (the
/// keras.applications default, as TensorFlow's side does).
func benchInputShape(_ net: Network) -> [Int] { net.inputShape.map { $0 == -1 ? 224 : $0 } }

/// A seeded input in roughly pixel range, the same for every line.
func benchInput(batch: Int, size: [Int]) -> Tensor {
    var g = SplitMix64(seed: 7)
    return Tensor(shape: [batch] + size, scalars: (0..<(batch * size.reduce(1, *))).map { _ in Float(g.nextUnit() * 255 - 128) })
}

/// Resets this process's peak resident set (VmHWM) to its current size, so the next
/// `peakRSSMiB()` is the peak of what ran in between (Linux: clear_refs 5).
func resetPeakRSS() {
    try? Data("5".utf8).write(to: URL(fileURLWithPath: "/proc/self/clear_refs"))
}

/// The path of this `convlens` binary, for the bench's children (a server, isolated forwards).
func thisExecutable() throws -> String {
    try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
}

/// Runs a peer script under tools/bench and returns its JSON lines.
func runPython(_ python: String, _ script: String, _ arguments: [String]) throws -> [[String: Any]] {
    try runJSONLines(python, [script] + arguments)
}

/// Runs a child process (a peer script, or this executable for an isolated measurement) and
/// returns the JSON objects it printed one per line; its stderr is shown when it fails.
func runJSONLines(_ executable: String, _ arguments: [String]) throws -> [[String: Any]] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    // TensorFlow's start-up chatter is dropped; its stderr is shown when the script fails.
    process.environment = ProcessInfo.processInfo.environment.merging(["TF_CPP_MIN_LOG_LEVEL": "3"]) { $1 }
    let pipe = Pipe()
    let errors = FileManager.default.temporaryDirectory.appendingPathComponent("convlens-bench-child-\(getpid()).log")
    _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: errors) }
    process.standardOutput = pipe
    process.standardError = try FileHandle(forWritingTo: errors)
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        let name = ([executable] + arguments.prefix(1)).map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: " ")
        let log = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        throw CLIError("\(name) failed (exit \(process.terminationStatus)):\n\(log.suffix(3000))")
    }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
}

/// The suite as a Markdown table (docs/performance.md's suite table is this table).
func benchTable(_ lines: [BenchLine]) -> String {
    var out = "| line | model | work | ConvLens ms | peer | peer ms | ratio | ConvLens peak RSS MiB | peer peak RSS MiB |\n"
    out += "|---|---|---|---|---|---|---|---|---|\n"
    for l in lines {
        let cells = [
            l.line, l.model, l.work, fmt(l.convlensMs), l.peer ?? "-", l.peerMs.map(fmt) ?? "-",
            l.ratio.map { String(format: "%.2f", $0) } ?? "-", l.convlensPeakRSSMiB.map { String(format: "%.0f", $0) } ?? "-",
            l.peerPeakRSSMiB.map { String(format: "%.0f", $0) } ?? "-",
        ]
        out += "| " + cells.joined(separator: " | ") + " |\n"
    }
    return out
}

/// Geometric mean and worst of the forward ratios of the `--models` lines (the forward
/// section's, not the bundled model's nor the `lines` section's).
func forwardSummary(_ lines: [BenchLine]) -> (count: Int, geomean: Double, worst: BenchLine)? {
    let forwards = lines.filter {
        $0.section == BenchSuite.Section.forward.rawValue && $0.line == "forward" && !$0.model.hasSuffix("(bundled)") && $0.ratio != nil
    }
    guard let worst = forwards.max(by: { $0.ratio! < $1.ratio! }) else { return nil }
    let geomean = exp(forwards.map { log($0.ratio!) }.reduce(0, +) / Double(forwards.count))
    return (forwards.count, geomean, worst)
}
