import ArgumentParser

@main
struct ConvLens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convlens",
        abstract: "See inside a Keras convolutional network: activations, filters, class heatmaps.",
        discussion: """
            Load a Keras model file (.h5 from Keras 2 or 3, or a .keras archive) — by default
            the bundled EfficientNet-Lite0 — and ask it for pictures or exact numbers. Inputs are
            PNG/JPEG images, or .npy float32 arrays of shape (H,W,C) or (N,H,W,C) taken as
            already preprocessed.

            Examples:
              convlens serve                                   # http://127.0.0.1:8080/
              convlens predict --input cat.jpg
              convlens heatmap --input cat.jpg -o overlay.png
              convlens activations --input cat.jpg --layer stem_activation -o grid.png
              convlens filters --layer block3a_expand_activation --index 7 -o f.png
              convlens gallery --out gallery/
            """,
        subcommands: [
            Serve.self, Worker.self, Summary.self, Predict.self, Activations.self, Filters.self, Heatmap.self, Gallery.self,
            Gradient.self, Evaluate.self, Examples.self, Bench.self,
        ]
    )

    static func main() async {
        WaitPolicy.passiveUnlessSet()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
