import CMachinePeak
import Foundation
import Synchronization

/// The FP32 FMA peak of `threads` cores running at once, measured by the CMachinePeak kernels
/// at every vector width the CPU has (the widest is not always the fastest: Zen 4 runs
/// AVX-512 on 256-bit pipes), with the width that reached it. Measured, not computed from a
/// clock figure: under load cores clock differently from what /proc/cpuinfo says.
func measuredFMAPeak(threads: Int, seconds: Double = 0.3) -> (gflops: Double, width: Int) {
    let widest = Int(convlens_fma_width())
    var best = (gflops: 0.0, width: 0)
    for width in [256, 512] where width <= widest {
        let rates = Mutex([Double](repeating: 0, count: max(1, threads)))
        DispatchQueue.concurrentPerform(iterations: max(1, threads)) { t in
            let rate = convlens_fma_gflops(Int32(width), seconds)
            rates.withLock { $0[t] = rate }
        }
        let total = rates.withLock { $0.reduce(0, +) }
        if total > best.gflops { best = (total, width) }
    }
    return best
}

/// The CPU's model name, family and model (/proc/cpuinfo), to name the machine next to every
/// figure (virtual machines often report only the vendor's brand in the name).
func cpuModelName() -> String {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
    let lines = info.split(separator: "\n")
    func field(_ key: String) -> String? {
        guard let line = lines.first(where: { $0.hasPrefix(key) }), let value = line.split(separator: ":", maxSplits: 1).last
        else { return nil }
        return value.trimmingCharacters(in: .whitespaces)
    }
    let name = field("model name") ?? "unknown CPU"
    guard let family = field("cpu family"), let model = field("model\t") else { return name }
    return "\(name), family \(family) model \(model)"
}
