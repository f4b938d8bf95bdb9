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
            block5_conv3, or the model's default Grad-CAM layer); ascent (forward to block3_conv1,
            or the middle gallery convolution, + backward of one channel's mean to the input;
            image n takes the first live channel from n mod c on), at batch 1 and 64. Ratio = ConvLens time / TensorFlow time (≤ 1 is faster).
            Run it on a quiet machine: other load on the cores ruins the timings.
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

    @Flag(help: "With --forward-only: print one JSON line {\"line\", \"ms_median\", \"batch\", \"input\"}.")
    var json = false

    func run() throws {
        let threads = model.threads ?? ProcessInfo.processInfo.activeProcessorCount
        ComputeThreads.set(threads)
        let m = try model.load()
        let net = m.network
        if forwardOnly {
            // A variable input size is timed at 224×224, as the applications' defaults.
            let size = net.inputShape.map { $0 == -1 ? 224 : $0 }
            var g = SplitMix64(seed: 7)
            let x = Tensor(shape: [1] + size, scalars: (0..<size.reduce(1, *)).map { _ in Float(g.nextUnit() * 255 - 128) })
            let ms = try time(runs) { _ = try net.predict(x) }
            // TensorFlow's forward of the same file, same threads, same run (its own random input).
            let tf =
                try python.map {
                    try runKeras(
                        python: $0, modelPath: m.profile.modelURL.path, threads: threads, batch: 1,
                        only: ["forward"], runs: runs)["forward"]
                } ?? nil
            if json {
                print(
                    "{\"line\": \"forward\", \"ms_median\": \(String(format: "%.3f", ms)), \"batch\": 1, \"input\": \(size), \"threads\": \(threads)"
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
        // VGG16's layers when they are there (the lines the issues quote), else the model's
        // default Grad-CAM layer and the middle gallery convolution.
        let camName = m.network.layerIndex["block5_conv3"] != nil ? "block5_conv3" : m.session.defaultCAMLayer?.name
        let galleryMiddle = m.session.galleryLayers.isEmpty ? nil : m.session.galleryLayers[m.session.galleryLayers.count / 2]
        let ascentName = m.network.layerIndex["block3_conv1"] != nil ? "block3_conv1" : galleryMiddle?.target.name
        guard let camName, let ascentName else { throw CLIError("the model has no convolution to time Grad-CAM and ascent on") }
        let lastConv = try resolveLayer(camName, in: m)
        let ascentLayer = try resolveLayer(ascentName, in: m)
        let logits = m.session.scoreNode(postActivation: false)
        let size = net.inputShape.map { $0 == -1 ? 224 : $0 }

        func input(batch: Int) -> Tensor {
            var g = SplitMix64(seed: 7)
            return Tensor(shape: [batch] + size, scalars: (0..<(batch * size.reduce(1, *))).map { _ in Float(g.nextUnit() * 255 - 128) })
        }
        let x1 = input(batch: 1)

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

        var results: [(name: String, ms: Double)] = []
        results.append(("forward", try time(runs) { _ = try net.predict(x1) }))
        results.append(
            (
                "gradcam",
                try time(runs) {
                    let trace = try net.forward(x1, stopAfter: logits, backwardTo: lastConv)
                    let y = trace[logits]!
                    var seed = Tensor(zeros: y.shape)
                    seed.scalars[y.scalars.indices.max { y.scalars[$0] < y.scalars[$1] }!] = 1
                    _ = try net.backward(from: logits, seed: seed, to: lastConv, trace: trace)
                }
            ))
        let channels1 = try liveChannels(x1)
        results.append(("ascent_step", try time(runs) { try ascentStep(x1, channels: channels1) }))
        // The issue's memory bound is about batch 1: forward + backward to the input at 224².
        let rssBatch1 = peakRSSMiB()
        let xBig = input(batch: bigBatch)
        let channelsBig = try liveChannels(xBig)
        results.append(("ascent_step_b\(bigBatch)", try time(max(1, runs / 2)) { try ascentStep(xBig, channels: channelsBig) }))

        let flops = forwardFLOPs(net, input: size)
        var reference: [String: Double] = [:]
        if let python {
            printErr("running tools/bench/bench_keras.py (TensorFlow) on the same model…")
            reference = try runKeras(
                python: python, modelPath: m.profile.modelURL.path, threads: threads, batch: bigBatch,
                layers: ["--cam-layer", camName, "--layer", ascentName])
        }
        print(
            "ConvLens bench: \(m.keras.name), input \(size), \(threads) thread(s), median of \(runs) runs; "
                + "gradcam at \(camName), ascent at \(ascentName); \(cpuModelName())")
        print("line           convlens ms   tensorflow ms   ratio")
        for r in results {
            let tf = reference[r.name]
            let tfText = tf.map { String(format: "%13.1f", $0) } ?? "            -"
            let ratio = tf.map { String(format: "%7.2f", r.ms / $0) } ?? "      -"
            print(String(format: "%-14@ %11.1f  ", r.name as NSString, r.ms) + tfText + "   " + ratio)
        }
        let fwd = results[0].ms
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
        print(rssLine("after the batch-1 lines", rssBatch1, reference["peak_rss_b1"]))
        print(rssLine("overall", peakRSSMiB(), reference["peak_rss"]))
    }
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
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments =
        ["tools/bench/bench_keras.py", "--model", modelPath, "--threads", String(threads), "--batch", String(batch)]
        + (only.isEmpty ? [] : ["--only"] + only) + (runs.map { ["--runs", String($0)] } ?? []) + layers
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CLIError("tools/bench/bench_keras.py failed (exit \(process.terminationStatus))") }
    var out: [String: Double] = [:]
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let name = obj["name"] as? String
        else { continue }
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
