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
        .library(name: "JobStore", targets: ["JobStore"]),
        // For the fuzz targets in Fuzz/ (a separate package); nothing else links it.
        .library(name: "Server", targets: ["Server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", exact: "0.9.20"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["JSON", "YAML"]),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        // System libraries (Debian packages installed by scripts/setup).
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5"),
        .systemLibrary(name: "CDNNL"),
        // OpenSSL's libcrypto, for SHA-256 content addresses of models, images and results.
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto"),

        .target(
            name: "Engine",
            dependencies: ["CDNNL"]
        ),
        // libjpeg-turbo and libpng behind C shims that turn longjmp errors into return codes;
        // PNG is written with libdeflate.
        .target(
            name: "CImageCodecs",
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16"), .linkedLibrary("deflate")]
        ),
        .target(name: "Imaging", dependencies: ["CImageCodecs"]),
        // The FP32 FMA peak of this machine, measured (for `convlens bench`'s % of peak).
        .target(name: "CMachinePeak"),
        .target(name: "Visualization", dependencies: ["Engine", "Imaging", "KerasFormat", "COpenSSL"]),
        .target(
            name: "KerasFormat",
            dependencies: ["Engine", "CHDF5", .product(name: "ZIPFoundation", package: "ZIPFoundation")]
        ),
        // HTTP routes, the job queue, the result cache, configuration and errors.
        // It only routes, queues and caches: every picture comes from Visualization.
        .target(
            name: "Server",
            dependencies: [
                "Engine", "KerasFormat", "Imaging", "Visualization", "COpenSSL", "JobStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The cluster-wide job queue and result store in PostgreSQL. Deliberately
        // independent of the other ConvLens targets: requests are opaque JSON here.
        .target(
            name: "JobStore",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "convlens",
            dependencies: [
                "Engine", "KerasFormat", "Imaging", "Visualization", "Server", "CMachinePeak",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "TestSupport"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "TestSupport"]),
        // Scratch files the test processes remove when they exit.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CLITests", dependencies: ["convlens", "TestSupport"]),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "Imaging", "KerasFormat", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .testTarget(
            name: "JobStoreTests",
            dependencies: [
                "JobStore", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "VisualizationTests", dependencies: ["Visualization", "Engine", "Imaging", "KerasFormat", "TestSupport"]),
        .testTarget(
            name: "KerasFormatTests",
            dependencies: ["KerasFormat", "Engine", "TestSupport"]
        ),
    ]
)
