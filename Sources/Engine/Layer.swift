/// One operation of a network: its forward pass and its backward pass to its
/// inputs, side by side. Nothing here trains, so there are no weight gradients.
///
/// Shapes passed to `outputShape` are per-sample (no batch dimension); tensors
/// passed to `forward`/`backward` carry the batch dimension first.
///
/// Layers are immutable after construction apart from internal caches (oneDNN
/// primitives per input shape), which each layer guards itself; one layer may
/// run on several threads at once.
public protocol Layer: AnyObject, Sendable {
    /// The unique node name inside its network (Keras' layer name, or a derived
    /// name such as `block1_conv1/activation` when one Keras layer expands to several nodes).
    var name: String { get }
    /// What the layer is, for summaries and errors (e.g. `Conv2D`, `ReLU`).
    var kind: String { get }
    /// Number of stored parameters (weights, biases, BN statistics).
    var parameterCount: Int { get }

    /// The per-sample output shape for these per-sample input shapes; throws a
    /// `EngineError.shapeMismatch` naming the layer when the inputs don't fit.
    func outputShape(for inputShapes: [[Int]]) throws -> [Int]

    /// Computes the output for a batch.
    func forward(_ inputs: [Tensor]) throws -> Tensor

    /// Gradient of a scalar loss w.r.t. each input, given the inputs and output of
    /// the forward pass and the gradient w.r.t. the output. Returns one tensor per
    /// input, each shaped like that input.
    func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor]
}

extension Layer {
    public var parameterCount: Int { 0 }
}

/// A layer whose output may be written over one of its inputs. An inference
/// plan hands a layer the inputs it reads for the last time, so an
/// element-wise layer can update a map in place (one read and one write)
/// instead of copying it first. An input someone else still holds is copied
/// on write, as any shared array, so the result is the same either way.
protocol InPlaceLayer: Layer {
    /// `forward(inputs)`, free to take the tensors out of `inputs`.
    func forward(consuming inputs: inout [Tensor]) throws -> Tensor
}

public enum EngineError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(layer: String, detail: String)
    case unknownNode(String)
    case invalidRequest(String)
    case dnnl(status: Int, call: String)

    public var description: String {
        switch self {
        case .shapeMismatch(let layer, let detail): return "layer '\(layer)': \(detail)"
        case .unknownNode(let name): return "no layer named '\(name)'"
        case .invalidRequest(let detail): return detail
        case .dnnl(let status, let call): return "oneDNN call \(call) failed with status \(status)"
        }
    }
}

/// How a convolution or pooling window treats the border, as Keras defines it.
public enum Padding: String, Sendable, Equatable {
    /// No padding; windows that would cross the border are dropped.
    case valid
    /// TensorFlow's "same": output size ceil(in / stride); the total padding is
    /// split with the smaller half before and the larger after (asymmetric).
    case same

    /// Output size and the padding (before, after) along one spatial axis.
    public func outputSizeAndPadding(input: Int, kernel: Int, stride: Int, dilation: Int = 1)
        -> (size: Int, before: Int, after: Int)
    {
        let effective = (kernel - 1) * dilation + 1
        switch self {
        case .valid:
            // (input < effective: no window fits. Integer division truncates toward
            // zero, so (input - effective) / stride + 1 alone would claim 1.)
            return (input < effective ? 0 : (input - effective) / stride + 1, 0, 0)
        case .same:
            let out = (input + stride - 1) / stride
            let total = max(0, (out - 1) * stride + effective - input)
            return (out, total / 2, total - total / 2)
        }
    }
}
