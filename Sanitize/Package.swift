// swift-tools-version:6.1
import PackageDescription

// The parsers of untrusted bytes and their C shims (Imaging: libpng/libjpeg-turbo; KerasFormat:
// HDF5, zip, JSON) under AddressSanitizer in CI: `scripts/sanitize` builds this package with
// `--sanitize=address` (+ UBSan on the C targets). A package of its own so that only these
// modules and their tests are instrumented and built: the server's dependencies (NIO, TLS,
// PostgreSQL) are not part of it. The test sources are the root package's own (Tests/ holds
// symlinks to ../../Tests/...), so nothing is duplicated.

// A path dependency's identity is its directory's name (`main`, a worktree's name, ...).
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "ConvLens"

let package = Package(
    name: "ConvLensSanitize",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/weichsel/ZIPFoundation", exact: "0.9.20"),
    ],
    targets: [
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "ImagingTests",
            dependencies: [.product(name: "Imaging", package: root), "TestSupport"],
            path: "Tests/ImagingTests"
        ),
        .testTarget(
            name: "KerasFormatTests",
            dependencies: [
                .product(name: "KerasFormat", package: root), .product(name: "Engine", package: root), "TestSupport",
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ],
            path: "Tests/KerasFormatTests"
        ),
    ]
)
