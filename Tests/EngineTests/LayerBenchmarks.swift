import Foundation
import Testing
@testable import Engine

/// Timings of the engine layers on VGG16's convolutional stack (224×224,
/// random weights). Off by default; run in release:
///
///     CONVLENS_BENCH=1 swift test -c release -Xswiftc -enable-testing \
///         --scratch-path .build-engine-release --filter LayerBenchmarks
///
/// Only checks that the numbers are finite; prints the times.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["CONVLENS_BENCH"] != nil))
struct LayerBenchmarks {
    static func vgg16Convolutions() -> [any Layer] {
        var rng = SplitMix64(seed: 1)
        var layers: [any Layer] = []
        var cin = 3
        for (block, (width, count)) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)].enumerated() {
            for i in 0..<count {
                let scale = (2 / Float(9 * cin)).squareRoot()
                layers.append(Conv2D(name: "block\(block + 1)_conv\(i + 1)", kernel: rng.tensor([3, 3, cin, width], -scale, scale),
                                     bias: rng.tensor([width], 0, 0.1), strides: [1, 1], padding: .same, dilation: [1, 1]))
                layers.append(Activation(name: "block\(block + 1)_conv\(i + 1)/relu", function: .relu(), kind: "ReLU"))
                cin = width
            }
            layers.append(MaxPooling2D(name: "block\(block + 1)_pool", poolSize: [2, 2], strides: [2, 2], padding: .valid))
        }
        return layers
    }

    static func time(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
    }

    @Test func vgg16ConvolutionalStack() throws {
        let layers = Self.vgg16Convolutions()
        var rng = SplitMix64(seed: 2)
        let x = rng.tensor([1, 224, 224, 3], 0, 1)
        for threads in [1, 2] {
            ComputeThreads.set(threads)
            var acts = [x]
            _ = try layers.reduce(x) { try $1.forward([$0]) }   // warm-up: builds and caches the plans
            var perKind: [String: Double] = [:]
            let fwd = try Self.time {
                acts = [x]
                for l in layers {
                    var y = Tensor(zeros: [0])
                    perKind[l.kind, default: 0] += try Self.time { y = try l.forward([acts.last!]) }
                    acts.append(y)
                }
            }
            var g = acts.last!
            _ = try layers.indices.reversed().reduce(g) { try layers[$1].backward([acts[$1]], output: acts[$1 + 1], outputGradient: $0)[0] }
            var perKindBack: [String: Double] = [:]
            let bwd = try Self.time {
                for i in layers.indices.reversed() {
                    let l = layers[i]
                    var d = Tensor(zeros: [0])
                    perKindBack[l.kind, default: 0] += try Self.time {
                        d = try l.backward([acts[i]], output: acts[i + 1], outputGradient: g)[0]
                    }
                    g = d
                }
            }
            let c0 = clock()
            let wall = try Self.time { _ = try layers[2].forward([acts[2]]) }
            let cpu = Double(clock() - c0) / Double(CLOCKS_PER_SEC) * 1000
            print("block1_conv2 at \(ComputeThreads.current) thread(s): CPU/wall = \(String(format: "%.2f", cpu / wall))")
            print("VGG16 convs, \(threads) thread(s): forward \(Int(fwd)) ms \(perKind.mapValues(Int.init)), "
                  + "backward \(Int(bwd)) ms \(perKindBack.mapValues(Int.init))")
            #expect(g.scalars.allSatisfy { $0.isFinite })
            #expect(acts.last!.shape == [1, 7, 7, 512])
        }
    }

    /// Process CPU time over wall time while one convolution runs: ~1 on one
    /// thread, up to ~2 on two (less when other processes load the cores).
    @Test func threadScaling() throws {
        var rng = SplitMix64(seed: 4)
        let conv = Conv2D(name: "c", kernel: rng.tensor([3, 3, 64, 64], -0.1, 0.1), bias: nil,
                          strides: [1, 1], padding: .same, dilation: [1, 1])
        let x = rng.tensor([1, 112, 112, 64])
        for threads in [1, 2, 1] {
            ComputeThreads.set(threads)
            _ = try conv.forward([x])
            let c0 = clock()
            let wall = try Self.time { for _ in 0..<10 { _ = try conv.forward([x]) } }
            let cpu = Double(clock() - c0) / Double(CLOCKS_PER_SEC) * 1000
            print("threads \(threads) (omp max \(ComputeThreads.current)): 10 forwards \(Int(wall)) ms wall, "
                  + "CPU/wall \(String(format: "%.2f", cpu / wall))")
        }
        #expect(ComputeThreads.current == 1)
    }

    /// The memory-bound Swift loops on one 224×224×64 map (3.2 M floats).
    @Test func elementwiseLoops() throws {
        var rng = SplitMix64(seed: 5)
        let x = rng.tensor([1, 224, 224, 64])
        let g = rng.tensor([1, 224, 224, 64])
        let relu = Activation(name: "r", function: .relu(), kind: "ReLU")
        let pool = MaxPooling2D(name: "p", poolSize: [2, 2], strides: [2, 2], padding: .valid)
        let y = try relu.forward([x]), p = try pool.forward([x])
        let gp = rng.tensor(p.shape)
        var report: [String] = []
        for (label, body) in [
            ("relu forward", { _ = try relu.forward([x]) }),
            ("relu backward", { _ = try relu.backward([x], output: y, outputGradient: g) }),
            ("maxpool forward", { _ = try pool.forward([x]) }),
            ("maxpool backward", { _ = try pool.backward([x], output: p, outputGradient: gp) }),
        ] as [(String, () throws -> Void)] {
            try body()
            let t = try Self.time { for _ in 0..<10 { try body() } }
            report.append("\(label) \(String(format: "%.2f", t / 10)) ms")
        }
        print("3.2 M floats: " + report.joined(separator: ", "))
        #expect(report.count == 4)
    }

    /// EfficientNet-style depthwise 3×3 on 112×112×96, stride 2 'same', batch 1.
    @Test func depthwise() throws {
        var rng = SplitMix64(seed: 6)
        let dw = DepthwiseConv2D(name: "dw", kernel: rng.tensor([3, 3, 96, 1]), bias: rng.tensor([96]),
                                 strides: [2, 2], padding: .same, dilation: [1, 1])
        let x = rng.tensor([1, 112, 112, 96])
        var y = try dw.forward([x])
        _ = try dw.backward([x], output: y, outputGradient: y)
        let f = try Self.time { for _ in 0..<10 { y = try dw.forward([x]) } }
        let b = try Self.time { for _ in 0..<10 { _ = try dw.backward([x], output: y, outputGradient: y) } }
        print("depthwise 112x112x96 stride 2: forward \(String(format: "%.2f", f / 10)) ms, backward \(String(format: "%.2f", b / 10)) ms")
        #expect(y.shape == [1, 56, 56, 96])
    }

    /// VGG16's fc1 (25088 → 4096, 411 MB of weights) at batch 1: time and how
    /// much resident memory the oneDNN weight copies add.
    @Test func largeDense() throws {
        func residentMB() -> Int {
            let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "0 0"
            return (Int(statm.split(separator: " ")[1]) ?? 0) * 4096 / 1_000_000
        }
        var rng = SplitMix64(seed: 7)
        let before = residentMB()
        let fc = Dense(name: "fc1", kernel: rng.tensor([25088, 4096], -0.01, 0.01), bias: rng.tensor([4096]))
        let x = rng.tensor([1, 25088])
        let afterInit = residentMB()
        var y = try fc.forward([x])
        let afterForward = residentMB()
        _ = try fc.backward([x], output: y, outputGradient: y)
        let afterBackward = residentMB()
        let f = try Self.time { for _ in 0..<5 { y = try fc.forward([x]) } }
        let b = try Self.time { for _ in 0..<5 { _ = try fc.backward([x], output: y, outputGradient: y) } }
        print("fc1 25088→4096: forward \(Int(f / 5)) ms, backward \(Int(b / 5)) ms; resident MB: weights \(afterInit - before), "
              + "+forward \(afterForward - afterInit), +backward \(afterBackward - afterForward)")
        #expect(y.shape == [1, 4096])
    }

    @Test func batchOf64SmallConvolution() throws {
        var rng = SplitMix64(seed: 3)
        let conv = Conv2D(name: "c", kernel: rng.tensor([3, 3, 32, 64], -0.1, 0.1), bias: rng.tensor([64]),
                          strides: [2, 2], padding: .same, dilation: [1, 1])
        let x = rng.tensor([64, 56, 56, 32])
        _ = try conv.forward([x])
        var y = x
        let f = try Self.time { y = try conv.forward([x]) }
        _ = try conv.backward([x], output: y, outputGradient: y)
        let b = try Self.time { _ = try conv.backward([x], output: y, outputGradient: y) }
        print("batch 64 conv 56x56x32→28x28x64 stride 2: forward \(Int(f)) ms, backward \(Int(b)) ms")
        #expect(y.shape == [64, 28, 28, 64])
    }
}
