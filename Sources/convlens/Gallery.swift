import ArgumentParser
import Engine
import Foundation
import Server

struct Gallery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Pre-render every convolution layer's filter grid (method auto: the book for the first convolutions, lucid deeper; at its activated output) into a folder and the server's cache.",
        discussion: """
            Uses the same settings as `serve` (config file, CONVLENS_* variables), so the grids land
            in the cache the server reads (cache.dir) and the gallery shows them at once. Grids
            already cached are copied, not recomputed. `gallery.prerender: true` in the config
            does the same inside a running server, at low priority.
            """)

    @Option(name: .long, help: "Folder for the PNGs (one per layer: <layer>.png).")
    var out: String

    @Option(name: .long, help: "Keras model (.h5/.keras) or ConvLens profile (.json). Default: the bundled model.")
    var model: String?

    @Option(name: .long, help: "Filters per grid (default: gallery.count, 16).")
    var count: Int?

    @Option(name: .long, help: "Configuration file. Default: config/convlens.yaml if it exists.")
    var config: String?

    @Option(name: .long, help: "Only these layers (comma-separated).")
    var layers: String?

    func run() async throws {
        var loader = ServiceLoader(command: "gallery")
        loader.set("model.path", model)
        loader.set("gallery.count", count)
        let service = try await loader.load(config: config).service
        // Rendered here, on this thread, not on the server's compute threads.
        service.executor.shutdown()
        ComputeThreads.set(service.executor.ompThreads)
        let outURL = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
        var chosen = service.session.galleryLayers
        if let layers {
            let names = layers.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            for n in names where !chosen.contains(where: { $0.convolution.name == n }) {
                throw CLIError("'\(n)' is not a convolution layer of the model; see `convlens summary`")
            }
            chosen = chosen.filter { names.contains($0.convolution.name) }
        }
        let began = Date()
        for (i, (convolution, target)) in chosen.enumerated() {
            let t0 = Date()
            let (png, cached) = try service.renderGalleryGrid(target)
            try png.write(to: outURL.appendingPathComponent("\(convolution.name).png"), options: .atomic)
            let shown = target.name == convolution.name ? convolution.name : "\(convolution.name) → \(target.name)"
            printErr(
                String(
                    format: "[%d/%d] %@: %@ (%.1f s)", i + 1, chosen.count, shown, cached ? "from the cache" : "rendered",
                    Date().timeIntervalSince(t0)))
        }
        printErr(
            String(
                format: "%d grid(s) in %@ (%.1f s); cache: %@", chosen.count, out, Date().timeIntervalSince(began),
                service.cache.directory?.path ?? "memory only"))
    }
}
