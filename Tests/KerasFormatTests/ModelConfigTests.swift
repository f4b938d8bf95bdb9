import Engine
import Foundation
import Testing

@testable import KerasFormat

/// Weights held in memory, keyed by layer name.
final class MemoryWeightStore: WeightStore {
    var named: [String: [(name: String, tensor: Tensor)]] = [:]
    var ordered: [String: [Tensor]]?

    /// Keys: the layer's path in the model tree, "outer/inner/layer".
    func variables(forLayer name: String, className: String, path: [String]) throws -> StoredVariables {
        let key = (path + [name]).joined(separator: "/")
        if let ordered { return .ordered(ordered[key] ?? []) }
        return .named(named[key] ?? [])
    }
}

private func ramp(_ shape: [Int], scale: Float = 0.01) -> Tensor {
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, scalars: (0..<n).map { Float(($0 * 7) % 13 - 6) * scale })
}

/// A Keras layer entry (Keras 2 inbound format when `inbound` is given).
private func layer(_ cls: String, _ name: String, _ config: [String: Any] = [:], inbound: [[String]]? = nil) -> [String: Any] {
    var c = config
    c["name"] = name
    var entry: [String: Any] = ["class_name": cls, "config": c, "name": name]
    if let inbound { entry["inbound_nodes"] = inbound.map { call in call.map { [$0, 0, 0, [String: Any]()] } } }
    return entry
}

private func sequential(_ layers: [[String: Any]], extra: [String: Any] = [:]) throws -> ModelSpec {
    var config: [String: Any] = ["name": "m", "layers": layers]
    for (k, v) in extra { config[k] = v }
    return try parse(["class_name": "Sequential", "config": config])
}

private func functional(_ layers: [[String: Any]], inputs: [String] = ["in"], outputs: [String]) throws -> ModelSpec {
    try parse([
        "class_name": "Functional",
        "config": [
            "name": "f", "layers": layers,
            "input_layers": inputs.map { [$0, 0, 0] }, "output_layers": outputs.map { [$0, 0, 0] },
        ] as [String: Any],
    ])
}

private func parse(_ object: [String: Any]) throws -> ModelSpec {
    let data = try JSONSerialization.data(withJSONObject: object)
    return try ModelSpec.parse(try JSON.parse(data, what: "test config"))
}

private func build(_ spec: ModelSpec, _ store: WeightStore = MemoryWeightStore()) throws -> KerasModel {
    try KerasModel.assemble(spec: spec, store: store, format: .keras2HDF5, version: nil, registry: .standard)
}

private var input8: [String: Any] { layer("InputLayer", "in", ["batch_input_shape": [NSNull(), 8, 8, 3]]) }

/// Expects loading to fail with a message containing every string of `parts`.
private func expectFailure(
    _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected an error containing \(parts)", sourceLocation: sourceLocation)
    } catch {
        for p in parts {
            #expect("\(error)".contains(p), "error '\(error)' lacks '\(p)'", sourceLocation: sourceLocation)
        }
    }
}

@Suite struct ModelConfigTests {
    @Test func sequentialWithoutInputLayerTakesTheShapeFromTheFirstLayerOrTheBuildShape() throws {
        let store = MemoryWeightStore()
        store.named["d"] = [("kernel", ramp([5, 2])), ("bias", ramp([2]))]
        // Keras 2: the first layer carries batch_input_shape.
        let k2 = try build(try sequential([layer("Dense", "d", ["units": 2, "batch_input_shape": [NSNull(), 5]])]), store)
        #expect(k2.network.inputShape == [5])
        #expect(k2.network.outputShape == [2])
        // Keras 3: the model records build_input_shape.
        let k3 = try build(try sequential([layer("Dense", "d", ["units": 2])], extra: ["build_input_shape": [NSNull(), 5]]), store)
        #expect(k3.network.inputShape == [5])
        // Never built: no shape anywhere.
        expectFailure(["never built"]) { _ = try sequential([layer("Dense", "d", ["units": 2])]) }
    }

    @Test func variableInputSizeBecomesMinusOne() throws {
        let spec = try sequential([
            layer("InputLayer", "in", ["batch_shape": [NSNull(), NSNull(), NSNull(), 3]]),
            layer("GlobalAveragePooling2D", "gap"),
        ])
        #expect(spec.inputShape == [-1, -1, 3])
        let model = try build(spec)
        #expect(model.layers.map(\.outputShape) == [[-1, -1, 3], [3]])
        #expect(model.layers.map(\.isSpatial) == [true, false])
    }

    @Test func unsupportedOptionsFailAtLoadTimeNamingLayerClassAndOption() throws {
        let store = MemoryWeightStore()
        store.named["c"] = [("kernel", ramp([3, 3, 3, 4])), ("bias", ramp([4]))]
        let conv: [String: Any] = ["filters": 4, "kernel_size": [3, 3]]
        func one(_ cls: String, _ config: [String: Any]) throws {
            _ = try build(try sequential([input8, layer(cls, "c", config)]), store)
        }
        expectFailure(["'c'", "Conv2D", "groups=2", "does not divide the 3 input channels"]) {
            try one("Conv2D", conv.merging(["groups": 2]) { $1 })
        }
        expectFailure(["'c'", "Conv2D", "data_format='channels_first'"]) {
            try one("Conv2D", conv.merging(["data_format": "channels_first"]) { $1 })
        }
        expectFailure(["'c'", "Conv2D", "activation='mish'"]) { try one("Conv2D", conv.merging(["activation": "mish"]) { $1 }) }
        expectFailure(["'c'", "Conv2D", "padding='causal'"]) { try one("Conv2D", conv.merging(["padding": "causal"]) { $1 }) }
        expectFailure(["'c'", "Conv2D", "dtype"]) {
            try one(
                "Conv2D", conv.merging(["dtype": ["class_name": "QuantizedDTypePolicy", "config": ["name": "int8_from_float32"]]]) { $1 })
        }
        expectFailure(["'c'", "BatchNormalization", "axis=1"]) { try one("BatchNormalization", ["axis": 1]) }
        expectFailure(["'c'", "MaxPooling2D", "channels_first"]) { try one("MaxPooling2D", ["data_format": "channels_first"]) }
        expectFailure(["'c'", "Softmax", "axis=1"]) { try one("Softmax", ["axis": 1]) }
        expectFailure(["'c'", "Activation", "activation='mish'"]) { try one("Activation", ["activation": "mish"]) }
        expectFailure(["'c'", "Masking", "unsupported layer class"]) { try one("Masking", [:]) }
        expectFailure(["'c'", "Resizing", "interpolation='gaussian'"]) {
            try one("Resizing", ["height": 4, "width": 4, "interpolation": "gaussian"])
        }
        expectFailure(["'c'", "Conv2DTranspose", "dilation_rate"]) {
            try one("Conv2DTranspose", conv.merging(["dilation_rate": 2]) { $1 })
        }
        expectFailure(["'c'", "Pipeline", "a Resizing inside the Pipeline"]) {
            try one("Pipeline", ["layers": [["class_name": "RandomFlip", "config": [:]], ["class_name": "Resizing", "config": [:]]]])
        }
        expectFailure(["'c'", "UpSampling2D", "larger than 4096"]) { try one("UpSampling2D", ["size": [5000, 2]]) }
        expectFailure(["'c'", "Lambda", "Python code"]) { try one("Lambda", [:]) }
        store.named["c"] = [("kernel", ramp([3, 2]))]
        expectFailure(["'c'", "Dense", "lora_rank=4"]) {
            _ = try build(
                try sequential([
                    layer("InputLayer", "in", ["batch_shape": [NSNull(), 3]]),
                    layer("Dense", "c", ["units": 2, "use_bias": false, "lora_rank": 4]),
                ]), store)
        }
    }

    @Test func weightProblemsNameTheLayer() throws {
        let store = MemoryWeightStore()
        let conv: [String: Any] = ["filters": 4, "kernel_size": [3, 3]]
        let spec = try sequential([input8, layer("Conv2D", "c", conv)])
        store.named["c"] = [("kernel", ramp([3, 3, 3, 5])), ("bias", ramp([4]))]
        expectFailure(["'c'", "Conv2D", "kernel has shape [3, 3, 3, 5], expected [3, 3, 3, 4]"]) { _ = try build(spec, store) }
        store.named["c"] = [("kernel", ramp([3, 3, 3, 4]))]
        expectFailure(["'c'", "Conv2D", "'bias' is missing"]) { _ = try build(spec, store) }
        store.named["c"] = [("kernel", ramp([3, 3, 3, 4])), ("bias", ramp([4])), ("extra", ramp([1]))]
        expectFailure(["'c'", "unexpected stored weights extra"]) { _ = try build(spec, store) }
        // .keras: variables by position, their number must fit the configuration.
        store.ordered = ["c": [ramp([3, 3, 3, 4])]]
        expectFailure(["'c'", "stores 1 variables", "has 2"]) { _ = try build(spec, store) }
    }

    @Test func batchNormalizationVariablesFollowScaleAndCenterInTheZipOrder() throws {
        let store = MemoryWeightStore()
        let mean = ramp([3])
        let variance = Tensor(shape: [3], scalars: [1, 2, 3])
        let beta = Tensor(shape: [3], scalars: [5, 6, 7])
        store.ordered = ["bn": [beta, mean, variance]]
        let model = try build(try sequential([input8, layer("BatchNormalization", "bn", ["scale": false, "epsilon": 0.01])]), store)
        let bn = try #require(model.network.nodes[1].layer as? Engine.BatchNormalization)
        #expect(bn.gamma == nil)
        #expect(bn.beta == beta)
        #expect(bn.movingMean == mean)
        #expect(bn.movingVariance == variance)
        #expect(bn.epsilon == 0.01)
        #expect(model.layers[1].parameterCount == 9)
    }

    @Test func fusedActivationsSplitAndLogitsNode() throws {
        let store = MemoryWeightStore()
        store.named["fc"] = [("kernel", ramp([3, 4])), ("bias", ramp([4]))]
        let head = try build(
            try sequential([
                input8, layer("GlobalAveragePooling2D", "gap"),
                layer("Dense", "fc", ["units": 4, "activation": "softmax"]),
            ]), store)
        let net = head.network
        #expect(net.nodes.map(\.name) == ["input", "gap", "fc", "fc/activation"])
        #expect(try net.node(named: "fc") == 3)
        #expect(net.preActivationIndex["fc"] == 2)
        #expect(head.logitsNode == 2)
        #expect(head.head == .softmax)
        #expect(head.layers.last?.nodeId == 3)

        // A separate softmax layer: the logits are its input.
        store.named["fc"] = [("kernel", ramp([3, 4])), ("bias", ramp([4]))]
        let separate = try build(
            try sequential([
                input8, layer("GlobalAveragePooling2D", "gap"),
                layer("Dense", "fc", ["units": 4]),
                layer("Activation", "sm", ["activation": "softmax"]),
            ]), store)
        #expect(separate.logitsNode == 2)
        #expect(separate.network.outputNode == 3)

        // Sigmoid head (binary or multi-label): the logits are its pre-activation too.
        let sigmoid = try build(
            try sequential([
                input8, layer("GlobalAveragePooling2D", "gap"),
                layer("Dense", "fc", ["units": 4, "activation": "sigmoid"]),
            ]), store)
        #expect(sigmoid.logitsNode == 2)
        #expect(sigmoid.head == .sigmoid)
        #expect(sigmoid.network.outputNode == 3)

        // Any other final activation is no classifier head: the output is the score.
        let tanh = try build(
            try sequential([
                input8, layer("GlobalAveragePooling2D", "gap"),
                layer("Dense", "fc", ["units": 4, "activation": "tanh"]),
            ]), store)
        #expect(tanh.logitsNode == nil && tanh.head == nil)
    }

    @Test func activationConfigurations() throws {
        func function(_ cls: String, _ config: [String: Any]) throws -> ActivationFunction {
            let m = try build(try sequential([input8, layer(cls, "a", config)]))
            return try #require(m.network.nodes[1].layer as? Engine.Activation).function
        }
        #expect(try function("ReLU", ["max_value": 6, "negative_slope": 0, "threshold": 0]) == .relu(maxValue: 6))
        #expect(
            try function("ReLU", ["max_value": NSNull(), "negative_slope": 0.1, "threshold": 0.5])
                == .relu(maxValue: nil, negativeSlope: 0.1, threshold: 0.5))
        #expect(try function("Activation", ["activation": "relu6"]) == .relu(maxValue: 6))
        #expect(try function("Activation", ["activation": "tanh"]) == .tanh)
        #expect(try function("Activation", ["activation": "linear"]) == .linear)
        #expect(
            try function(
                "Activation",
                [
                    "activation": [
                        "module": "keras.activations", "class_name": "function",
                        "config": "sigmoid", "registered_name": "function",
                    ]
                ]) == .sigmoid)
        #expect(try function("LeakyReLU", ["alpha": 0.3]) == .relu(negativeSlope: 0.3))
        #expect(try function("LeakyReLU", ["negative_slope": 0.1]) == .relu(negativeSlope: 0.1))
        #expect(try function("Softmax", ["axis": -1]) == .softmax)
    }

    @Test func zeroPaddingForms() throws {
        func pads(_ p: Any) throws -> [Int] {
            try build(try sequential([input8, layer("ZeroPadding2D", "z", ["padding": p])])).network.outputShape
        }
        #expect(try pads(2) == [12, 12, 3])
        #expect(try pads([1, 2]) == [10, 12, 3])
        #expect(try pads([[1, 0], [0, 3]]) == [9, 11, 3])
    }

    @Test func functionalGraphsKeras2AndKeras3InboundFormats() throws {
        // Keras 2: [[["layer", node, tensor, {}], ...]] per call.
        let k2 = try build(
            try functional(
                [
                    input8,
                    layer("ReLU", "r", inbound: [["in"]]),
                    layer("Add", "add", inbound: [["in", "r"]]),
                    layer("GlobalAveragePooling2D", "gap", inbound: [["add"]]),
                ], outputs: ["gap"]))
        #expect(k2.network.nodes.map(\.inputs) == [[], [0], [0, 1], [2]])

        // Keras 3: {"args": [...], "kwargs": {}} with __keras_tensor__ objects, a list for Add.
        func kt(_ l: String, _ node: Int = 0) -> [String: Any] {
            [
                "class_name": "__keras_tensor__",
                "config": [
                    "shape": [NSNull(), 8, 8, 3], "dtype": "float32",
                    "keras_history": [l, node, 0] as [Any],
                ],
            ]
        }
        var relu = layer("ReLU", "r")
        relu["inbound_nodes"] = [["args": [kt("in")], "kwargs": [String: Any]()]]
        var add = layer("Add", "add")
        add["inbound_nodes"] = [["args": [[kt("r"), kt("in")]], "kwargs": [String: Any]()]]
        var inputLayer = input8
        inputLayer["inbound_nodes"] = [Any]()
        let spec = try parse([
            "class_name": "Functional",
            "config": [
                "name": "f", "layers": [inputLayer, relu, add],
                "input_layers": ["in", 0, 0], "output_layers": ["add", 0, 0],
            ] as [String: Any],
        ])
        let k3 = try build(spec)
        #expect(k3.network.nodes.map(\.inputs) == [[], [0], [1, 0]])
    }

    @Test func sharedLayerCallsGetTheirOwnNodesWhateverTheConfigOrder() throws {
        let store = MemoryWeightStore()
        store.named["shared"] = [("kernel", ramp([1, 1, 3, 3])), ("bias", ramp([3]))]
        // The second call of `shared` takes `mid`, listed after it.
        let model = try build(
            try functional(
                [
                    input8,
                    layer("Conv2D", "shared", ["filters": 3, "kernel_size": 1], inbound: [["in"], ["mid"]]),
                    layer("ReLU", "mid", inbound: [["shared"]]),
                ], outputs: ["shared"]), store)
        let names = model.network.nodes.map(\.name)
        #expect(names == ["input", "shared", "mid", "shared@1"])
        #expect(model.layers.map(\.name) == ["in", "shared", "mid"])
        #expect(try model.network.node(named: "shared@1") == 3)
        // The output is call 0 of `shared` ("shared", 0, 0).
        #expect(model.network.outputNode == 1)
    }

    @Test func unsupportedGraphs() throws {
        expectFailure(["2 inputs"]) {
            _ = try functional(
                [
                    input8, layer("InputLayer", "in2", ["batch_input_shape": [NSNull(), 3]]),
                    layer("Add", "add", inbound: [["in", "in2"]]),
                ], inputs: ["in", "in2"], outputs: ["add"])
        }
        expectFailure(["2 outputs"]) {
            _ = try functional(
                [input8, layer("ReLU", "a", inbound: [["in"]]), layer("ReLU", "b", inbound: [["in"]])],
                outputs: ["a", "b"])
        }
        expectFailure(["cycle"]) {
            _ = try build(
                try functional(
                    [input8, layer("ReLU", "a", inbound: [["b"]]), layer("ReLU", "b", inbound: [["a"]])],
                    outputs: ["b"]))
        }
        expectFailure(["unknown layer 'ghost'"]) {
            _ = try build(try functional([input8, layer("ReLU", "a", inbound: [["ghost"]])], outputs: ["a"]))
        }
        expectFailure(["model class MyModel"]) { _ = try parse(["class_name": "MyModel", "config": [String: Any]()]) }
    }

    /// A Functional base inside a Sequential (the transfer-learning pattern):
    /// flattened into one network, inner layers addressed by their own names.
    @Test func nestedModelsAreFlattened() throws {
        let base: [String: Any] = [
            "class_name": "Functional",
            "config": [
                "name": "base",
                "layers": [
                    layer("InputLayer", "img", ["batch_input_shape": [NSNull(), 8, 8, 3]], inbound: []),
                    layer("Conv2D", "conv", ["filters": 4, "kernel_size": 3, "activation": "relu"], inbound: [["img"]]),
                    layer("ReLU", "act", inbound: [["conv"]]),
                ],
                "input_layers": [["img", 0, 0]], "output_layers": [["act", 0, 0]],
            ] as [String: Any],
        ]
        let store = MemoryWeightStore()
        store.named["base/conv"] = [("kernel", ramp([3, 3, 3, 4])), ("bias", ramp([4]))]
        store.named["head"] = [("kernel", ramp([4, 2])), ("bias", ramp([2]))]
        let model = try build(
            try sequential([
                input8, base, layer("GlobalAveragePooling2D", "gap"),
                layer("Dense", "head", ["units": 2, "activation": "softmax"]),
            ]), store)
        let net = model.network
        #expect(net.nodes.map(\.name) == ["input", "conv", "conv/activation", "act", "gap", "head", "head/activation"])
        #expect(model.layers.map(\.name) == ["in", "base", "conv", "act", "gap", "head"])
        #expect(model.layers.map(\.className) == ["InputLayer", "Functional", "Conv2D", "ReLU", "GlobalAveragePooling2D", "Dense"])
        #expect(model.layers[1].parameterCount == 3 * 3 * 3 * 4 + 4)
        #expect(model.layers[1].outputShape == [6, 6, 4])
        #expect(model.parameterCount == 3 * 3 * 3 * 4 + 4 + 4 * 2 + 2)
        #expect(try net.node(named: "base") == 3)
        #expect(try net.node(named: "conv") == 2)
        // Every inner layer is also addressed by its path in the model tree.
        #expect(try net.node(named: "base/conv") == 2)
        #expect(try net.node(named: "base/act") == 3)
        #expect(net.preActivationIndex["base/conv"] == 1)
        #expect(model.layers.map(\.path) == ["in", "base", "base/conv", "base/act", "gap", "head"])
        #expect(model.layers.map(\.depth) == [0, 0, 1, 1, 0, 0])
        // The summary shows the tree: inner layers indented under their model.
        let table = model.summaryTable().split(separator: "\n").map(String.init)
        #expect(table.contains { $0.hasPrefix("base ") })
        #expect(table.contains { $0.hasPrefix("  conv ") })
        #expect(table.contains { $0.hasPrefix("  act ") })
        #expect(net.preActivationIndex["conv"] == 1)
        #expect(model.logitsNode == 5)

        // A name used both outside and inside: the inner one is qualified.
        store.named["base/conv"] = [("kernel", ramp([3, 3, 3, 4])), ("bias", ramp([4]))]
        store.named["conv"] = [("kernel", ramp([1, 1, 4, 2])), ("bias", ramp([2]))]
        let clash = try build(try sequential([input8, base, layer("Conv2D", "conv", ["filters": 2, "kernel_size": 1])]), store)
        #expect(clash.network.nodes.map(\.name) == ["input", "base/conv", "base/conv/activation", "act", "conv"])

        // Keras 2 Functional: a nested model's single call is node 1 ([["base", 1, 0, {}]]).
        var gap = layer("GlobalAveragePooling2D", "gap")
        gap["inbound_nodes"] = [[["base", 1, 0, [String: Any]()]]]
        var baseCall = base
        baseCall["inbound_nodes"] = [[["in", 0, 0, [String: Any]()]]]
        let k2 = try build(try functional([input8, baseCall, gap], outputs: ["gap"]), store)
        #expect(k2.network.nodes.map(\.name) == ["input", "conv", "conv/activation", "act", "gap"])
        #expect(k2.network.nodes.last?.inputs == [3])

        // A nested model's input must fit what it is given.
        let small = try sequential([layer("InputLayer", "in", ["batch_input_shape": [NSNull(), 5, 5, 3]]), base])
        expectFailure(["'base'", "expects input [8, 8, 3], gets [5, 5, 3]"]) { _ = try build(small, store) }
    }

    /// Arithmetic on tensors: Keras 2 records `TFOpLambda` calls `[layer, node, tensor,
    /// {"y": constant or [layer, node, tensor]}]`; Keras 3 operation layers (module
    /// `keras.src.ops.numpy`) take constants among their args.
    @Test func tensorArithmeticFromKeras2AndKeras3() throws {
        func tfop(_ name: String, _ function: String, _ x: String, y: Any) -> [String: Any] {
            [
                "class_name": "TFOpLambda", "name": name,
                "config": ["name": name, "function": function, "dtype": "float32"] as [String: Any],
                "inbound_nodes": [[x, 0, 0, ["y": y, "name": NSNull()] as [String: Any]]],
            ]
        }
        let k2 = try build(
            try functional(
                [
                    input8,
                    tfop("tf.__operators__.add", "__operators__.add", "in", y: 3.0),
                    layer("ReLU", "r", ["max_value": 6], inbound: [["tf.__operators__.add"]]),
                    tfop("tf.math.multiply", "math.multiply", "r", y: 1.0 / 6),
                    tfop("tf.__operators__.add_1", "__operators__.add", "in", y: ["tf.math.multiply", 0, 0] as [Any]),
                    tfop("tf.math.subtract", "math.subtract", "tf.__operators__.add_1", y: 0.5),
                    // `2.0 * x`: the constant comes first, as Keras 2 writes it.
                    [
                        "class_name": "TFOpLambda", "name": "tf.math.multiply_1",
                        "config": ["name": "tf.math.multiply_1", "function": "math.multiply"] as [String: Any],
                        "inbound_nodes": [
                            ["_CONSTANT_VALUE", -1, 2.0, ["y": ["tf.math.subtract", 0, 0], "name": NSNull()] as [String: Any]] as [Any]
                        ],
                    ],
                ], outputs: ["tf.math.multiply_1"]))
        let nodes = k2.network.nodes
        #expect(nodes.map(\.inputs) == [[], [0], [1], [2], [0, 3], [4], [5]])
        let add3 = try #require(nodes[1].layer as? ChannelAffine)
        #expect(add3.offset == [3] && add3.scale == [1] && add3.kind == "TFOpLambda")
        #expect(try #require(nodes[3].layer as? ChannelAffine).scale == [Float(1.0 / 6)])
        #expect(nodes[4].layer is Engine.Add)
        #expect(try #require(nodes[5].layer as? ChannelAffine).center == [0.5])
        #expect(try #require(nodes[6].layer as? ChannelAffine).scale == [2])
        let x = Tensor(shape: [1, 8, 8, 3], scalars: (0..<192).map { Float($0 % 17) * 0.5 - 4 })
        let y = try k2.network.predict(x)
        for (xi, yi) in zip(x.scalars, y.scalars) {
            let hs = min(max(xi + 3, 0), 6) * Float(1.0 / 6)
            #expect(abs(yi - 2 * (xi + hs - 0.5)) < 1e-5)
        }

        func kt(_ l: String) -> [String: Any] {
            [
                "class_name": "__keras_tensor__",
                "config": [
                    "shape": [NSNull(), 8, 8, 3], "dtype": "float32",
                    "keras_history": [l, 0, 0] as [Any],
                ],
            ]
        }
        func op(_ cls: String, _ name: String, _ args: [Any]) -> [String: Any] {
            [
                "module": "keras.src.ops.numpy", "class_name": cls, "name": name, "config": ["name": name],
                "inbound_nodes": [["args": args, "kwargs": [String: Any]()]],
            ]
        }
        var inputLayer = input8
        inputLayer["inbound_nodes"] = [Any]()
        func k3(_ layers: [[String: Any]], output: String) throws -> KerasModel {
            try build(
                try parse([
                    "class_name": "Functional",
                    "config": [
                        "name": "f", "layers": [inputLayer] + layers, "input_layers": ["in", 0, 0], "output_layers": [output, 0, 0],
                    ] as [String: Any],
                ]))
        }
        let m3 = try k3(
            [
                op("Subtract", "sub", [2.0, kt("in")]), op("Multiply", "mul", [kt("sub"), [1.0, 2.0, 3.0]]),
                op("Add", "add", [kt("mul"), kt("in")]),
            ], output: "add")
        let y3 = try m3.network.predict(x)
        for (i, (xi, yi)) in zip(x.scalars, y3.scalars).enumerated() {
            #expect(abs(yi - ((2 - xi) * Float(i % 3 + 1) + xi)) < 1e-6)
        }
        // Keras 3's legacy .h5 config has no module: an operation shows by its bare config
        // (no trainable, no dtype) and its separate operands.
        var bare = op("Add", "add_h5", [kt("in"), 3.0])
        bare["module"] = nil
        let h5 = try k3([bare], output: "add_h5")
        #expect(try #require(h5.network.nodes[1].layer as? ChannelAffine).offset == [3])
        // Not the Add layer: the operation's class is looked up among operations.
        expectFailure(["'pow'", "operation Power"]) { _ = try k3([op("Power", "pow", [kt("in"), 2.0])], output: "pow") }
        expectFailure(["'div'", "division of a constant by a tensor"]) {
            _ = try k3([op("Divide", "div", [1.0, kt("in")])], output: "div")
        }
        expectFailure(["'tf.math.reduce_mean'", "function='math.reduce_mean'"]) {
            _ = try build(
                try functional(
                    [input8, tfop("tf.math.reduce_mean", "math.reduce_mean", "in", y: 1)],
                    outputs: ["tf.math.reduce_mean"]))
        }
    }

    @Test func newLayerKindsRefuseWhatTheyDoNotSupport() throws {
        let store = MemoryWeightStore()
        func one(_ cls: String, _ config: [String: Any]) throws {
            _ = try build(try sequential([input8, layer(cls, "c", config)]), store)
        }
        expectFailure(["'c'", "Normalization", "invert=true"]) {
            try one("Normalization", ["mean": [1, 2, 3], "variance": [1, 1, 1], "invert": true])
        }
        expectFailure(["'c'", "Normalization", "axis=[1]"]) { try one("Normalization", ["axis": [1], "mean": 0, "variance": 1]) }
        expectFailure(["'c'", "Normalization", "mean has 2 values for 3 channels"]) {
            try one("Normalization", ["mean": [1, 2], "variance": 1])
        }
        expectFailure(["'c'", "LayerNormalization", "rms_scaling=true"]) { try one("LayerNormalization", ["rms_scaling": true]) }
        expectFailure(["'c'", "Rescaling", "scale has 4 values for 3 channels"]) { try one("Rescaling", ["scale": [1, 2, 3, 4]]) }
        expectFailure(["'c'", "Reshape", "cannot reshape [8, 8, 3]"]) { try one("Reshape", ["target_shape": [5, -1]]) }
        expectFailure(["'c'", "Cropping2D", "leaves nothing"]) { try one("Cropping2D", ["cropping": [[4, 4], [0, 0]]]) }
        expectFailure(["'c'", "PReLU", "shared_axes=[4]"]) { try one("PReLU", ["shared_axes": [4]]) }
    }

    /// A Conv2D with one group per channel is a depthwise convolution (ConvNeXt).
    @Test func groupedConvolutionWithOneGroupPerChannelIsDepthwise() throws {
        let store = MemoryWeightStore()
        let kernel = ramp([3, 3, 1, 6], scale: 0.1)
        store.named["g"] = [("kernel", kernel), ("bias", ramp([6]))]
        store.named["d"] = [("depthwise_kernel", kernel.reshaped([3, 3, 3, 2])), ("bias", ramp([6]))]
        let grouped = try build(try sequential([input8, layer("Conv2D", "g", ["filters": 6, "kernel_size": 3, "groups": 3])]), store)
        let depthwise = try build(
            try sequential([input8, layer("DepthwiseConv2D", "d", ["kernel_size": 3, "depth_multiplier": 2])]), store)
        let x = Tensor(shape: [1, 8, 8, 3], scalars: (0..<192).map { Float($0 % 11) * 0.1 })
        #expect(try grouped.network.predict(x) == depthwise.network.predict(x))
    }

    @Test func helpers() {
        #expect(ZipWeightStore.snakeCase("Conv2D") == "conv2d")
        #expect(ZipWeightStore.snakeCase("DepthwiseConv2D") == "depthwise_conv2d")
        #expect(ZipWeightStore.snakeCase("BatchNormalization") == "batch_normalization")
        #expect(ZipWeightStore.snakeCase("ReLU") == "re_lu")
        #expect(ZipWeightStore.snakeCase("GlobalAveragePooling2D") == "global_average_pooling2d")
        #expect(ZipWeightStore.snakeCase("InputLayer") == "input_layer")
        #expect(LegacyHDF5WeightStore.shortName("block1_conv1/kernel:0") == "kernel")
        #expect(LegacyHDF5WeightStore.shortName("model/conv/moving_mean") == "moving_mean")
        #expect(LegacyHDF5WeightStore.shortName("bias") == "bias")
    }
}

extension SerialTests {
    @Suite struct SummaryTests {
        @Test func summaryOfTheBasicSequentialFixture() throws {
            let model = try KerasModel.load(contentsOf: fixtureDirectory.appendingPathComponent("seq_conv_basic.k2.h5"))
            #expect(model.name == "seq_conv_basic")
            #expect(model.format == .keras2HDF5)
            #expect(model.kerasVersion?.hasPrefix("2.") == true)
            let rows = model.layers.map { "\($0.name) \($0.className) \($0.outputShape) \($0.parameterCount)" }
            #expect(
                rows == [
                    "input InputLayer [17, 17, 3] 0",
                    "conv1 Conv2D [15, 15, 8] 224",
                    "conv2 Conv2D [8, 8, 8] 584",
                    "conv3 Conv2D [6, 6, 12] 876",
                    "pool MaxPooling2D [3, 3, 12] 0",
                    "flatten Flatten [108] 0",
                    "dropout Dropout [108] 0",
                    "fc1 Dense [16] 1744",
                    "predictions Dense [5] 85",
                ])
            #expect(model.parameterCount == 3513)
            for l in model.layers { #expect(try model.network.node(named: l.name) == l.nodeId) }

            let table = model.summaryTable()
            let lines = table.split(separator: "\n").map(String.init)
            for l in model.layers {
                #expect(lines.contains { $0.hasPrefix(l.name + " ") && $0.contains(l.className) })
            }
            // Columns line up: "Class" starts at the same column in the header and every row.
            let header = try #require(lines.first { $0.hasPrefix("Layer") })
            let column = try #require(header.range(of: "Class")).lowerBound.utf16Offset(in: header)
            for l in model.layers {
                let line = try #require(lines.first { $0.hasPrefix(l.name + " ") })
                let at = try #require(line.range(of: l.className)).lowerBound.utf16Offset(in: line)
                #expect(at == column, "\(line)")
            }
            #expect(table.contains("(15, 15, 8)"))
            let conv1 = try #require(lines.first { $0.hasPrefix("conv1 ") })
            let fc1 = try #require(lines.first { $0.hasPrefix("fc1 ") })
            #expect(conv1.hasSuffix("yes"))
            #expect(!fc1.hasSuffix("yes"))
            #expect(table.contains("3513 parameters"))

            let data = try JSONEncoder().encode(model.summary)
            let decoded = try JSONDecoder().decode(ModelSummary.self, from: data)
            #expect(decoded == model.summary)
            #expect(String(decoding: data, as: UTF8.self).contains("\"format\":\"keras2-h5\""))
        }

        @Test func formatsAndVersionsOfTheThreeFileKinds() throws {
            for (file, format, major) in [
                ("residual.k2.h5", KerasFileFormat.keras2HDF5, "2."),
                ("residual.k3.h5", .keras3HDF5, "3."), ("residual.keras", .kerasZip, "3."),
            ] {
                let model = try KerasModel.load(contentsOf: fixtureDirectory.appendingPathComponent(file))
                #expect(model.format == format)
                #expect(model.kerasVersion?.hasPrefix(major) == true, "\(file): \(model.kerasVersion ?? "nil")")
                #expect(model.name == "residual")
            }
        }

        /// The bundled default model (models/README.md: 149 layers, 4,694,024 parameters).
        @Test func bundledEfficientNetLite0() throws {
            let url = fixtureDirectory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("models/efficientnet_lite0.h5")
            let model = try KerasModel.load(contentsOf: url)
            #expect(model.format == .keras3HDF5)
            #expect(model.layers.count == 149)
            #expect(model.parameterCount == 4_694_024)
            #expect(model.network.inputShape == [224, 224, 3])
            #expect(model.network.outputShape == [1000])
            let logits = try #require(model.logitsNode)
            #expect(model.network.nodes[logits].layer is Engine.Dense)
        }

        @Test func aMissingFileIsAClearError() {
            expectFailure(["cannot read", "no-such-model.h5"]) {
                _ = try KerasModel.load(contentsOf: URL(fileURLWithPath: "/nonexistent/no-such-model.h5"))
            }
            expectFailure(["is a directory", "SavedModel"]) {
                _ = try KerasModel.load(contentsOf: fixtureDirectory)
            }
        }
    }
}
