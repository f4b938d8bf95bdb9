import Testing

@testable import Engine

/// Receptive fields against brute force: every input pixel is raised in turn (one image of a
/// batch each) and the output positions that change are recorded; the bounding box of the
/// pixels that change a position must be the computed field, clipped to the image. Weights,
/// biases and inputs are positive, so raising any pixel a window reaches raises the window's
/// result through convolutions, ReLU, max and average pooling and additions: what changes is
/// exactly what is reached.
@Suite struct ReceptiveFieldTests {
    static func positiveKernel(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SplitMix64(seed: seed)
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float(0.1 + 0.9 * rng.nextUnit()) })
    }

    /// Strides, 'same' and 'valid' padding, max and average pooling, a residual branch,
    /// zero padding, cropping and a depthwise convolution; odd sizes, so 'same' pads unevenly.
    static func network(height: Int, width: Int) throws -> Network {
        let c = 2
        let layers: [(any Layer, [Int])] = [
            (
                Conv2D(
                    name: "c1", kernel: positiveKernel([3, 3, c, 4], seed: 1), bias: nil, strides: [1, 1], padding: .same, dilation: [1, 1]),
                [0]
            ),
            (Activation(name: "r1", function: .relu()), [1]),
            (MaxPooling2D(name: "p1", poolSize: [2, 2], strides: [2, 2], padding: .valid), [2]),
            (
                Conv2D(
                    name: "b1", kernel: positiveKernel([1, 1, 4, 4], seed: 2), bias: nil, strides: [1, 1], padding: .same, dilation: [1, 1]),
                [3]
            ),
            (
                Conv2D(
                    name: "b2", kernel: positiveKernel([3, 3, 4, 4], seed: 3), bias: nil, strides: [1, 1], padding: .same, dilation: [1, 1]),
                [3]
            ),
            (Add(name: "add"), [4, 5]),
            (ZeroPadding2D(name: "zp", top: 1, bottom: 0, left: 2, right: 0), [6]),
            (
                Conv2D(
                    name: "c2", kernel: positiveKernel([3, 3, 4, 4], seed: 4), bias: nil, strides: [2, 2], padding: .valid,
                    dilation: [1, 1]), [7]
            ),
            (AveragePooling2D(name: "ap", poolSize: [2, 2], strides: [1, 1], padding: .same), [8]),
            (
                DepthwiseConv2D(
                    name: "dw", kernel: positiveKernel([3, 3, 4, 1], seed: 5), bias: nil, strides: [2, 1], padding: .same, dilation: [1, 1]),
                [9]
            ),
            (Cropping2D(name: "crop", top: 1, bottom: 0, left: 0, right: 1), [10]),
        ]
        var shapes = [[height, width, c]]
        var nodes = [Network.Node(id: 0, layer: nil, inputs: [], outputShape: shapes[0])]
        for (layer, inputs) in layers {
            let shape = try layer.outputShape(for: inputs.map { shapes[$0] })
            nodes.append(Network.Node(id: nodes.count, layer: layer, inputs: inputs, outputShape: shape))
            shapes.append(shape)
        }
        return try Network(nodes: nodes, outputNode: nodes.count - 1)
    }

    @Test(arguments: [(19, 23), (16, 16)])
    func fieldsEqualBruteForce(height: Int, width: Int) throws {
        let net = try Self.network(height: height, width: width)
        let c = net.inputShape[2]
        let pixels = height * width
        var rng = SplitMix64(seed: 9)
        let base = (0..<(pixels * c)).map { _ in Float(0.5 + 0.5 * rng.nextUnit()) }
        // Image 0 untouched; image 1 + p has pixel p raised by 100 in every channel.
        var batch = base
        for p in 0..<pixels {
            var image = base
            for k in 0..<c { image[p * c + k] += 100 }
            batch += image
        }
        let trace = try net.forward(Tensor(shape: [pixels + 1, height, width, c], scalars: batch), keepAll: true)
        let fields = try net.receptiveFields(height: height, width: width)
        var compared = 0
        for node in net.nodes.dropFirst() {
            guard let field = fields[node.id] else {
                Issue.record("\(node.name) has no receptive field")
                continue
            }
            let out = trace[node.id]!
            let (oh, ow, oc) = (out.shape[1], out.shape[2], out.shape[3])
            let per = oh * ow * oc
            for y in 0..<oh {
                for x in 0..<ow {
                    var top = Int.max
                    var left = Int.max
                    var bottom = Int.min
                    var right = Int.min
                    for p in 0..<pixels {
                        let changed = (0..<oc).contains { k in
                            let i = (y * ow + x) * oc + k
                            return abs(out.scalars[(1 + p) * per + i] - out.scalars[i]) > 1e-3
                        }
                        guard changed else { continue }
                        (top, bottom) = (min(top, p / width), max(bottom, p / width))
                        (left, right) = (min(left, p % width), max(right, p % width))
                    }
                    let box = field.box(row: y, column: x)
                    if top == Int.max {
                        #expect(box == nil, "\(node.name) (\(y), \(x)): nothing reaches it, computed \(String(describing: box))")
                    } else {
                        let want = (top: top, left: left, bottom: bottom, right: right)
                        #expect(
                            box.map { $0 == want } == true,
                            "\(node.name) (\(y), \(x)): brute force \(want), computed \(String(describing: box))")
                    }
                    compared += 1
                }
            }
        }
        #expect(compared > 500)
    }

    @Test func flattenedOutputsHaveNone() throws {
        let net = try Self.network(height: 16, width: 16)
        var nodes = net.nodes
        nodes.append(Network.Node(id: nodes.count, layer: Flatten(name: "flat"), inputs: [nodes.count - 1], outputShape: [-1]))
        let flat = try Network(nodes: nodes, outputNode: nodes.count - 1)
        let fields = try flat.receptiveFields(height: 16, width: 16)
        #expect(fields.last! == nil)
        // 3×3 'same' at the first layer: edges see two rows/columns, the inside three.
        #expect(fields[1]?.rows.first == 0...1 && fields[1]?.rows[5] == 4...6 && fields[1]?.rows.last == 14...15)
    }
}
