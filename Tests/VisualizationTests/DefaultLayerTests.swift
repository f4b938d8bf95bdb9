import Engine
import Foundation
import KerasFormat
import Testing

@testable import Visualization

/// The default Grad-CAM layer (`defaultCAMLayer`) on the Keras fixtures, in every
/// file format Keras wrote them in. The full-size keras.applications models are
/// checked outside CI by tools/fixtures/check_applications.py (see the issue note's table).
private let kerasFixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/keras")

private func defaultLayer(_ file: String) throws -> String? {
    defaultCAMLayer(of: try KerasModel.load(contentsOf: kerasFixtures.appendingPathComponent(file)))?.path
}

private func formats(_ fixtureCase: String) -> [String] {
    ["\(fixtureCase).k2.h5", "\(fixtureCase).k3.h5", "\(fixtureCase).keras"]
}

@Suite struct DefaultCAMLayerTests {
    /// The last convolution ends a residual block: its BN feeds the Add, and the
    /// block's ReLU follows (ResNet's conv5_block3_out, not conv5_block3_3_bn).
    @Test(arguments: formats("residual"))
    func residualBlockOutput(file: String) throws {
        #expect(try defaultLayer(file) == "b2_out")
    }

    /// MobileNetV2's tail: Conv_1 → Conv_1_bn → out_relu → pooling.
    @Test(arguments: formats("mobilenetv2_block"))
    func convolutionAfterItsBNAndActivation(file: String) throws {
        #expect(try defaultLayer(file) == "out_relu")
    }

    /// ConvNeXt's pieces: the last convolution (a strided Conv2D inside the nested
    /// downsampling Sequential, then a 1×1 branch) is carried through the
    /// CustomScaleLayer merge and two LayerNormalizations to the head's pooling.
    @Test(arguments: formats("convnext_block"))
    func throughMergesAndNormalisations(file: String) throws {
        #expect(try defaultLayer(file) == "ln_noscale")
    }

    /// The last convolution inside a nested conv base (the book's §5.3 pattern),
    /// followed by pooling: addressed by its path.
    @Test(arguments: formats("nested_base"))
    func insideANestedModel(file: String) throws {
        #expect(try defaultLayer(file) == "conv_base/block2_conv2")
    }

    /// Three levels of nesting, the last convolution inside `outer/middle`: carried
    /// out through the nested models' BN, ReLU and residual Add to the top-level ReLU.
    @Test(arguments: formats("nested_deep"))
    func outOfNestedModels(file: String) throws {
        #expect(try defaultLayer(file) == "relu")
    }

    /// A convolution with a fused activation followed by Flatten (or pooling, as
    /// VGG16's block5_conv3 → block5_pool): the convolution itself.
    @Test(arguments: formats("zeropad"))
    func fusedActivationBeforeFlatten(file: String) throws {
        #expect(try defaultLayer(file) == "conv3")
    }
}

/// The post-dominator walk on a hand-made graph: a diamond (two branches that
/// meet again) is crossed at the meeting node; a branch that leaves towards the
/// output on its own is not.
@Test func postDominatorsOfADiamondAndASideExit() throws {
    func relu(_ n: String) -> Engine.Activation { Engine.Activation(name: n, function: .relu()) }
    let shape = [4, 4, 2]
    let nodes: [Network.Node] = [
        .init(id: 0, layer: nil, inputs: [], outputShape: shape),
        .init(id: 1, layer: relu("a"), inputs: [0], outputShape: shape),
        .init(id: 2, layer: relu("b"), inputs: [1], outputShape: shape),
        .init(id: 3, layer: relu("c"), inputs: [1], outputShape: shape),
        .init(id: 4, layer: Engine.Add(name: "d"), inputs: [2, 3], outputShape: shape),
        .init(id: 5, layer: relu("e"), inputs: [4], outputShape: shape),
    ]
    let net = try Network(nodes: nodes, outputNode: 5)
    let p = PostDominators(net)
    #expect(p.immediate[1] == 4)
    #expect(p.immediate[2] == 4 && p.immediate[3] == 4)
    #expect(p.immediate[4] == 5 && p.immediate[0] == 1)
    #expect(Set(p.nodes(between: 1, and: 4)) == [2, 3, 4])
}
