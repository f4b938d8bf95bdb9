import Engine
import Foundation
import Imaging
import KerasFormat
import Testing

@testable import Visualization

/// The dataset index of the bundled EfficientNet-Lite0 over the sample photos, checked
/// against the activations computed directly: each channel's examples are its per-image
/// peaks, best first, at most k, each boxed by its position's receptive field.
private let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Test func datasetIndexKeepsEachChannelsTopImages() throws {
    let profile = try ModelProfile.read(contentsOf: root.appendingPathComponent("models/efficientnet_lite0.json"))
    let session = try ModelSession(keras: try KerasModel.load(contentsOf: profile.modelURL), profile: profile)
    let samples = root.appendingPathComponent("public/samples")
    let names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
    let layers = ["stem_activation", "block3a_expand_activation"]
    var index = DatasetIndex(k: 3)
    for name in names {
        try session.addToDatasetIndex(&index, name: name, imageData: Data(contentsOf: samples.appendingPathComponent(name)), layers: layers)
    }
    #expect(index.images == names)
    let pipeline = try session.imagePipeline()
    let fields = try session.network.receptiveFields(height: pipeline.height, width: pipeline.width)
    for layerName in layers {
        let layer = try session.spatialLayer(named: layerName)
        // Each image's activation, directly.
        let outputs = try names.map { name -> Tensor in
            let (x, _) = try pipeline.prepare(Data(contentsOf: samples.appendingPathComponent(name)))
            return try session.network.forward(x, stopAfter: layer.nodeId)[layer.nodeId]!
        }
        let c = outputs[0].shape[3]
        let channels = index.layers[layerName]!
        #expect(channels.count == c)
        for ch in stride(from: 0, to: c, by: max(1, c / 12)) {
            let peaks = outputs.map { a in stride(from: ch, to: a.count, by: c).map { a.scalars[$0] }.max()! }
            let want = zip(names, peaks).sorted { $0.1 > $1.1 }.prefix(3)
            let got = channels[ch]
            #expect(got.map(\.image) == want.map(\.0), "\(layerName) channel \(ch)")
            #expect(zip(got, want).allSatisfy { $0.value == $1.1 })
            for e in got {
                let w = outputs[0].shape[2]
                let a = outputs[names.firstIndex(of: e.image)!]
                #expect(a.scalars[(e.row * w + e.column) * c + ch] == e.value, "the example's position holds its value")
                let box = fields[layer.nodeId]!.box(row: e.row, column: e.column)!
                #expect(e.box == [box.top, box.left, box.bottom, box.right])
            }
        }
    }
    let strip = try session.examplesStrip(
        index.layers["stem_activation"]![0], image: { try Data(contentsOf: samples.appendingPathComponent($0)) })
    #expect(strip.width > 3 * 96 && strip.height > 96)
}
