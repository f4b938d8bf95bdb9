// swift-tools-version:6.1
import PackageDescription

// Data flows one way: bytes → Imaging → Engine (via a Network from KerasFormat)
// → Visualization → Imaging → PNG bytes. Server only routes, queues and caches.
let package = Package(
    name: "ConvLens",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "convlens", targets: ["convlens"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "KerasFormat", targets: ["KerasFormat"]),
        .library(name: "Imaging", targets: ["Imaging"]),
        .library(name: "Visualization", targets: ["Visualization"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", exact: "0.9.20"),
    ],
    targets: [
        // System libraries (Debian packages installed by scripts/setup).
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5"),
        .systemLibrary(name: "CDNNL"),

        .target(
            name: "Engine",
            dependencies: ["CDNNL"]
        ),
        // libjpeg-turbo and libpng behind C shims that turn longjmp errors into return codes.
        .target(
            name: "CImageCodecs",
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]
        ),
        .target(name: "Imaging", dependencies: ["CImageCodecs"]),
        .target(name: "Visualization", dependencies: ["Engine", "Imaging", "KerasFormat"]),
        .target(
            name: "KerasFormat",
            dependencies: ["Engine", "CHDF5", .product(name: "ZIPFoundation", package: "ZIPFoundation")]
        ),
        .executableTarget(
            name: "convlens",
            dependencies: [
                "Engine", "KerasFormat", "Imaging", "Visualization",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "EngineTests", dependencies: ["Engine"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"]),
        .testTarget(name: "CLITests", dependencies: ["convlens"]),
        .testTarget(name: "VisualizationTests", dependencies: ["Visualization", "Engine", "Imaging", "KerasFormat"]),
        .testTarget(
            name: "KerasFormatTests",
            dependencies: ["KerasFormat", "Engine"]
        ),
    ]
)
