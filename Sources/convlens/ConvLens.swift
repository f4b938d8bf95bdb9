import ArgumentParser

@main
struct ConvLens: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convlens",
        abstract: "See inside a Keras convolutional network: activations, filters, class heatmaps.",
        discussion: """
            Load a Keras model file (.h5 from Keras 2 or 3, or a .keras archive) and ask it
            for exact numbers. Inputs are .npy float32 arrays of shape (H,W,C) or (N,H,W,C),
            taken as already preprocessed.

            Examples:
              convlens summary --model vgg16.h5
              convlens predict --model vgg16.h5 --input x.npy
              convlens activations --model vgg16.h5 --input x.npy --layer block1_conv1 -o a.npy
              convlens gradient --model vgg16.h5 --input x.npy --output-index 386 --wrt block5_conv3 -o g.npy
            """,
        subcommands: [Summary.self, Predict.self, Activations.self, Filters.self, Heatmap.self, Gradient.self, Bench.self]
    )
}
