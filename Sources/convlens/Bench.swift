import ArgumentParser
import Engine
import Foundation
import KerasFormat
import Visualization

#if canImport(Glibc)
    import Glibc
#endif

/// The speed benchmark: VGG16's forward and backward work at the sizes the
/// visualisations use, timed here and (optionally) in TensorFlow on the same
/// machine in the same run, printed side by side.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a model's forward/backward work; with --python, also in TensorFlow, side by side.",
        discussion: """
            Make the model once with real Keras:  python tools/bench/make_vgg16.py /tmp/vgg16.h5
            Then:  swift run -c release convlens bench --model /tmp/vgg16.h5 --python venv/bin/python
            Lines: forward (batch 1, 224×224); gradcam (forward + backward from the top logit to
            block5_conv3, or the model's default Grad-CAM layer); forward_fast and gradcam_fast
            (the same with numerics=fast, next to TensorFlow's exact runs); ascent (forward to block3_conv1,
            or the middle gallery convolution, + backward of one channel's mean to the input;
            image n takes the first live channel from n mod c on), at batch 1 and 64. Ratio = ConvLens time / TensorFlow time (≤ 1 is faster).
            Run it on a quiet machine: other load on the cores ruins the timings.

            --suite all: every line of the performance table in one run, each next to its peer
            (run from the checkout; the peers are tools/bench/*.py under --python): POST /heatmap
            over HTTP to a `convlens serve` child on the bundled model (p50 of --requests; TensorFlow
            in-process: decode, resize, forward + tape, Grad-CAM, overlay, PNG level 1), then each
            of its stages in-process (heatmap_stage_*: decode … encode, no peer); the forward
            pass of the bundled model and of every model in --models DIR (check_applications.py's
            folder); Score-CAM on the bundled model (tf-keras-vis); on --model: forward, gradcam,
            ascent at batch 1 and --big-batch, a 64-filter book grid (150 px, 40 steps) and lucid
            (4 filters, 224 px, 256 steps). A Markdown table (docs/performance.md), or
            --json. --sections picks parts: heatmap, forward, scorecam, lines, grid, lucid.
              convlens bench --suite all --model /tmp/vgg16.h5 --models /tmp/apps --python venv/bin/python
            """)

    @OptionGroup var model: ModelOptions

    @Option(help: "Timed runs per line (after one warm-up run); the median is reported.")
    var runs = 5

    @Option(help: "Batch size of the large ascent line.")
    var bigBatch = 64

    @Option(
        help:
            "Python with TensorFlow; runs tools/bench/bench_keras.py on the same model for the side-by-side (with --forward-only: its forward line)."
    )
    var python: String?

    @Flag(
        help:
            "Time only the batch-1 forward pass, on any model (tools/fixtures/compare_with_keras.py uses it for the keras.applications table)."
    )
    var forwardOnly = false

    @Flag(
        help:
            "With --forward-only: print one JSON line {\"line\", \"ms_median\", \"batch\", \"input\", \"threads\", \"peak_rss_mib\"}; with --suite all: the lines and the machine as one JSON document."
    )
    var json = false

    @Option(help: "all: every line of the performance table, each next to its peer (see below).")
    var suite: String?

    @Option(
        help: "With --suite all: a folder of Keras files whose forward passes are timed (tools/fixtures/check_applications.py's output).")
    var models: String?

    @Option(help: "With --suite all: the parts to run, comma-separated (default: all of them).")
    var sections: String?

    @Option(help: "With --suite all: POST /heatmap requests timed (after three warm-ups).")
    var requests = 20

    @Option(
        name: .customLong("repeat"),
        help:
            "With --suite all: rounds of each forward line, ConvLens and TensorFlow alternated (fresh processes each), medians of the rounds; more rounds make single lines robust to a drifting machine."
    )
    var rounds = 1

    func run() throws {
        let threads = model.threads ?? ProcessInfo.processInfo.activeProcessorCount
        ComputeThreads.set(threads)
        if let suite {
            guard suite == "all" else { throw CLIError("--suite takes all, got '\(suite)'") }
            try runSuite(threads: threads)
            return
        }
        let m = try model.load()
        let net = m.network
        if forwardOnly {
            let size = benchInputShape(net)
            let x = benchInput(batch: 1, size: size)
            resetPeakRSS()
            let ms = try time(runs) { _ = try net.predict(x) }
            let rss = peakRSSMiB()
            // TensorFlow's forward of the same file, same threads, same run (its own random input).
            let tf =
                try python.map {
                    try runKeras(
                        python: $0, modelPath: m.profile.modelURL.path, threads: threads, batch: 1,
                        only: ["forward"], runs: runs)["forward"]
                } ?? nil
            if json {
                print(
                    "{\"line\": \"forward\", \"ms_median\": \(String(format: "%.3f", ms)), \"batch\": 1, \"input\": \(size), \"threads\": \(threads), \"peak_rss_mib\": \(String(format: "%.1f", rss))"
                        + (tf.map { ", \"tensorflow_ms_median\": \(String(format: "%.3f", $0))" } ?? "") + "}"
                )
            } else {
                print(
                    String(
                        format: "forward (batch 1, input %@): %.1f ms, median of %d runs, %d thread(s)",
                        size.map(String.init).joined(separator: "×") as NSString, ms, runs, threads)
                        + (tf.map { String(format: "; TensorFlow %.1f ms, ratio %.2f", $0, ms / $0) } ?? ""))
            }
            return
        }
        let layers = try BenchLayers(m)
        let measured = try coreLines(m, layers: layers, runs: runs, bigBatch: bigBatch)
        let flops = forwardFLOPs(net, input: benchInputShape(net))
        var reference: [String: Double] = [:]
        if let python {
            printErr("running tools/bench/bench_keras.py (TensorFlow) on the same model…")
            reference = try runKeras(
                python: python, modelPath: m.profile.modelURL.path, threads: threads, batch: bigBatch,
                layers: ["--cam-layer", layers.camName, "--layer", layers.ascentName])
        }
        print(
            "ConvLens bench: \(m.keras.name), input \(measured.lines[0].work), \(threads) thread(s), median of \(runs) runs; "
                + "gradcam at \(layers.camName), ascent at \(layers.ascentName); \(cpuModelName())")
        print("line           convlens ms   tensorflow ms   ratio")
        for r in measured.lines {
            let tf = reference[peerLineName(r.line)]
            let tfText = tf.map { String(format: "%13.1f", $0) } ?? "            -"
            let ratio = tf.map { String(format: "%7.2f", r.convlensMs / $0) } ?? "      -"
            print(String(format: "%-14@ %11.1f  ", r.line as NSString, r.convlensMs) + tfText + "   " + ratio)
        }
        let fwd = measured.lines[0].convlensMs
        let total = flops.conv + flops.dense
        let gflops = Double(total) / (fwd / 1000) / 1e9
        let peak = measuredFMAPeak(threads: threads)
        print(
            String(
                format:
                    "forward: %.1f GFLOP (convolutions %.1f, dense %.1f) in %.1f ms = %.1f GFLOP/s = %.0f%% of the measured FP32 FMA peak (%.0f GFLOP/s on %d core(s), %d-bit FMA; %@)",
                Double(total) / 1e9, Double(flops.conv) / 1e9, Double(flops.dense) / 1e9, fwd, gflops, 100 * gflops / peak.gflops,
                peak.gflops, threads, peak.width, cpuModelName() as NSString))
        func rssLine(_ label: String, _ ours: Double, _ theirs: Double?) -> String {
            String(format: "peak RSS %@: ConvLens %.0f MiB", label, ours)
                + (theirs.map { String(format: ", TensorFlow %.0f MiB (ratio %.2f)", $0, ours / $0) } ?? "")
        }
        print(rssLine("after the batch-1 lines", measured.peakRSSBatch1, reference["peak_rss_b1"]))
        print(rssLine("of the batch-\(bigBatch) ascent", measured.peakRSSBig, reference["peak_rss"]))
    }
}

extension Bench {
    func runSuite(threads: Int) throws {
        guard (1...100_000).contains(requests) else { throw CLIError("--requests must be 1...100000, got \(requests)") }
        guard (1...1024).contains(bigBatch) else { throw CLIError("--big-batch must be 1...1024, got \(bigBatch)") }
        guard (1...20).contains(rounds) else { throw CLIError("--repeat must be 1...20, got \(rounds)") }
        let chosen = try sections.map { text in
            try text.split(separator: ",").map { name in
                guard let s = BenchSuite.Section(rawValue: String(name)) else {
                    throw CLIError(
                        "--sections: unknown part '\(name)' (\(BenchSuite.Section.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return s
            }
        }
        let suite = BenchSuite(
            python: python, threads: threads, runs: runs, bigBatch: bigBatch, modelPath: model.model, modelsDir: models,
            sections: chosen ?? BenchSuite.Section.allCases, requests: requests, rounds: rounds)
        let lines = try suite.run()
        let peak = measuredFMAPeak(threads: threads)
        let machine = "\(cpuModelName()), \(threads) thread(s), measured FP32 FMA peak \(String(format: "%.0f", peak.gflops)) GFLOP/s"
        let summary = forwardSummary(lines)
        if json {
            struct Report: Encodable {
                var machine: String
                var lines: [BenchLine]
                var forwardModels: Int?
                var forwardGeomeanRatio: Double?
                var forwardWorst: String?
                var forwardWorstRatio: Double?
            }
            let report = Report(
                machine: machine, lines: lines, forwardModels: summary?.count, forwardGeomeanRatio: summary?.geomean,
                forwardWorst: summary?.worst.model, forwardWorstRatio: summary?.worst.ratio)
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("ConvLens bench --suite all: \(machine); medians of \(runs) runs (heavy lines: one run); ratio = ConvLens / peer\n")
            print(benchTable(lines), terminator: "")
            if let summary {
                print(
                    String(
                        format: "\nforward over %d models: geometric mean of the ratios %.2f, worst %@ %.2f", summary.count,
                        summary.geomean,
                        summary.worst.model as NSString, summary.worst.ratio!))
            }
        }
    }
}

/// The forward, Grad-CAM and ascent-step lines on one model: forward (batch 1); gradcam
/// (forward + backward from the top logit to the CAM layer); the ascent step at batch 1 and
/// `bigBatch` (forward to the ascent layer + backward of one channel's mean to the input,
/// and the book's update). Peak RSS after the batch-1 lines and over the big batch.
func coreLines(_ m: OpenedModel, layers: BenchLayers, runs: Int, bigBatch: Int) throws
    -> (lines: [BenchLine], peakRSSBatch1: Double, peakRSSBig: Double)
{
    let net = m.network
    let lastConv = try resolveLayer(layers.camName, in: m)
    let ascentLayer = try resolveLayer(layers.ascentName, in: m)
    let logits = m.session.scoreNode(postActivation: false)
    let size = benchInputShape(net)
    let x1 = benchInput(batch: 1, size: size)
    let sizeText = size.map(String.init).joined(separator: "×")

    // Each image's loss is the mean of its own channel, as a filter grid does: image n
    // takes the first channel from n mod c on that is alive (> 0 somewhere) in that
    // image. A dead channel's gradient is identically zero, and the engine skips backward
    // convolutions of all-zero gradients, so a dead target (channel 0 of block3_conv1 for
    // this input) would time a forward pass only. TensorFlow's side targets channel 0;
    // its work does not depend on the channel. Chosen once, outside the timing.
    func liveChannels(_ x: Tensor) throws -> [Int] {
        let out = try net.forward(x, stopAfter: ascentLayer)[ascentLayer]!
        let c = out.shape[3]
        let hw = out.shape[1] * out.shape[2]
        return out.scalars.withUnsafeBufferPointer { o in
            (0..<out.batch).map { n in
                let live = { (ch: Int) in (0..<hw).contains { o[(n * hw + $0) * c + ch] > 0 } }
                return (0..<c).lazy.map { (n + $0) % c }.first(where: live) ?? n % c
            }
        }
    }
    // One step of the code path filter jobs run (the update x + 10 · g / (rms(g) + 1e-5),
    // as tools/bench/bench_keras.py does it).
    func ascentStep(_ x: Tensor, channels: [Int]) throws {
        _ = try net.bookFilterAscent(
            layerNode: ascentLayer, filters: channels, start: x,
            parameters: FilterAscentParameters(steps: 1, stepSize: 10, size: size[0]))
    }

    var lines: [BenchLine] = []
    func add(_ name: String, _ work: String, _ ms: Double) {
        lines.append(BenchLine(line: name, model: m.profile.name, work: work, convlensMs: ms))
    }
    add("forward", "batch 1, \(sizeText)", try time(runs) { _ = try net.predict(x1) })
    func gradCAM() throws {
        let trace = try net.forward(x1, stopAfter: logits, backwardTo: lastConv)
        let y = trace[logits]!
        var seed = Tensor(zeros: y.shape)
        seed.scalars[y.scalars.indices.max { y.scalars[$0] < y.scalars[$1] }!] = 1
        _ = try net.backward(from: logits, seed: seed, to: lastConv, trace: trace)
    }
    add("gradcam", "batch 1, \(sizeText), top logit to \(layers.camName)", try time(runs, gradCAM))
    let channels1 = try liveChannels(x1)
    add("ascent_step", "batch 1, \(sizeText), \(layers.ascentName)", try time(runs) { try ascentStep(x1, channels: channels1) })
    // The issue's memory bound is about batch 1: forward + backward to the input at 224².
    let rssBatch1 = peakRSSMiB()
    resetPeakRSS()
    let xBig = benchInput(batch: bigBatch, size: size)
    let channelsBig = try liveChannels(xBig)
    add(
        "ascent_step_b\(bigBatch)", "batch \(bigBatch), \(sizeText), \(layers.ascentName)",
        try time(max(1, runs / 2)) { try ascentStep(xBig, channels: channelsBig) })
    let rssBig = peakRSSMiB()
    // Forward and Grad-CAM with numerics=fast (Winograd where it fits; TensorFlow's side is
    // its exact run), last: the Winograd plans hold transformed weights that would stay
    // resident under the memory figures above.
    try Numerics.scoped(.fast) {
        add("forward_fast", "batch 1, \(sizeText), fast numerics", try time(runs) { _ = try net.predict(x1) })
        add("gradcam_fast", "batch 1, \(sizeText), top logit to \(layers.camName), fast numerics", try time(runs, gradCAM))
    }
    return (lines, rssBatch1, rssBig)
}

/// The TensorFlow line a ConvLens line is compared with: a fast-numerics line with
/// TensorFlow's one (exact) run of the same work.
func peerLineName(_ line: String) -> String {
    line.hasSuffix("_fast") ? String(line.dropLast("_fast".count)) : line
}

/// Wall time in milliseconds of one run without a warm-up, for work that takes seconds.
func timeOnce(_ body: () throws -> Void) rethrows -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
}

/// Median wall time in milliseconds of `runs` runs after one warm-up.
func time(_ runs: Int, _ body: () throws -> Void) throws -> Double {
    try body()
    var ms: [Double] = []
    for _ in 0..<max(1, runs) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        ms.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
    }
    ms.sort()
    return ms[ms.count / 2]
}

/// This process's peak resident set (VmHWM from /proc/self/status), in MiB.
func peakRSSMiB() -> Double {
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
    {
        return kib / 1024
    }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024  // Linux reports KiB
}

/// Runs tools/bench/bench_keras.py and reads its JSON lines (`{"name": ..., "ms_median": ...}`);
/// `only` picks its lines (all by default), `runs` its batch-1 runs (its default when nil).
func runKeras(
    python: String, modelPath: String, threads: Int, batch: Int, only: [String] = [], runs: Int? = nil, layers: [String] = []
) throws -> [String: Double] {
    let arguments =
        ["--model", modelPath, "--threads", String(threads), "--batch", String(batch)]
        + (only.isEmpty ? [] : ["--only"] + only) + (runs.map { ["--runs", String($0)] } ?? []) + layers
    var out: [String: Double] = [:]
    for obj in try runPython(python, "tools/bench/bench_keras.py", arguments) {
        guard let name = obj["name"] as? String else { continue }
        if let ms = obj["ms_median"] as? Double { out[name] = ms }
        if let mb = obj["peak_rss_mb"] as? Double { out[name] = mb }
    }
    return out
}

/// Multiply-add FLOPs (2 per MAC) of one forward pass at batch 1: convolutions
/// (the work the GFLOP/s figure is about) and dense layers, reported apart.
func forwardFLOPs(_ net: Network, input: [Int]) -> (conv: Int, dense: Int) {
    guard let shapes = try? net.outputShapes(forInput: input) else { return (0, 0) }
    var conv = 0
    var dense = 0
    for node in net.nodes.dropFirst() {
        let out = shapes[node.id]
        if let c = node.layer as? Conv2D {
            let k = c.kernel.shape
            conv += 2 * out[0] * out[1] * out[2] * k[0] * k[1] * k[2]
        } else if let d = node.layer as? DepthwiseConv2D {
            let k = d.kernel.shape
            conv += 2 * out[0] * out[1] * out[2] * k[0] * k[1]
        } else if let d = node.layer as? Dense {
            dense += 2 * d.kernel.count * out.dropLast().reduce(1, *)
        }
    }
    return (conv, dense)
}
