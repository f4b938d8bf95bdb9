// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for ConvLens' parsers. A package of its own, so the fuzzer and
// sanitizer flags never reach the normal build: `scripts/fuzz TARGET SECONDS` builds it
// with `--sanitize=fuzzer --sanitize=address` (every module, the root package's included,
// is instrumented) and runs one target. Each target's file defines
// `LLVMFuzzerTestOneInput`; libFuzzer supplies `main`.

// A path dependency's identity is its directory's name (`main`, `wt-fuzz`, ...), so the
// products below name the root package by that, not by its manifest name.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "ConvLens"

func fuzzTarget(_ name: String, _ products: [String]) -> Target {
    .executableTarget(
        name: name,
        dependencies: products.map { .product(name: $0, package: root) },
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]
    )
}

let package = Package(
    name: "ConvLensFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        fuzzTarget("FuzzImageDecode", ["Imaging"]),
        fuzzTarget("FuzzNPY", ["Engine"]),
        fuzzTarget("FuzzKerasConfig", ["KerasFormat"]),
        fuzzTarget("FuzzRequests", ["Visualization"]),
        fuzzTarget("FuzzMultipart", ["Server"]),
        fuzzTarget("FuzzRange", ["Server"]),
    ]
)
