import Foundation

/// Input scalings, in Float32 arithmetic with the same operation order as
/// `keras.applications.imagenet_utils.preprocess_input` on NumPy arrays.
public enum Preprocessing: Sendable, Equatable, CustomStringConvertible {
    /// VGG/ResNet50: RGB→BGR, then subtract [103.939, 116.779, 123.68] (BGR order). No scaling.
    case caffe
    /// MobileNet/Inception/EfficientNet-style: `x / 127.5 − 1`.
    case tf
    /// `x / 255`, then subtract ImageNet mean [0.485, 0.456, 0.406] and divide by std [0.229, 0.224, 0.225] (RGB).
    case torch
    /// `x / 255` (the book's small convnet).
    case scale
    /// Raw 0–255 values as floats.
    case none
    /// `x · scale + offset` (as `keras.layers.Rescaling(scale, offset)`).
    case affine(scale: Float, offset: Float)

    public static let caffeMeanBGR: [Float] = [103.939, 116.779, 123.68]
    public static let torchMean: [Float] = [0.485, 0.456, 0.406]
    public static let torchStd: [Float] = [0.229, 0.224, 0.225]
}

extension Image {
    /// Converts to a float HWC image ready for a model. `caffe` and `torch`
    /// need 3 channels (caffe outputs BGR order); the others work per sample on any channel count.
    public func preprocessed(_ mode: Preprocessing) throws -> FloatImage {
        FloatImage(unchecked: width, height, channels, try mode.apply(toPixels: pixels.map(Float.init), channels: channels))
    }
}

extension Preprocessing {
    /// The scaling applied to interleaved pixel values in 0...255 (any number of pixels
    /// with `channels` values each): what a photo goes through, and what filter
    /// visualisation does to its grey noise start.
    public func apply(toPixels p: [Float], channels: Int) throws -> [Float] {
        let n = p.count
        var v = [Float](repeating: 0, count: n)
        switch self {
        case .caffe:
            guard channels == 3 else { throw ImagingError.invalidArgument("caffe preprocessing needs RGB, got \(channels) channels") }
            let m = Preprocessing.caffeMeanBGR
            for i in stride(from: 0, to: n, by: 3) {
                v[i] = p[i + 2] - m[0]
                v[i + 1] = p[i + 1] - m[1]
                v[i + 2] = p[i] - m[2]
            }
        case .tf:
            for i in 0..<n { v[i] = p[i] / 127.5 - 1.0 }
        case .torch:
            guard channels == 3 else { throw ImagingError.invalidArgument("torch preprocessing needs RGB, got \(channels) channels") }
            let m = Preprocessing.torchMean
            let s = Preprocessing.torchStd
            for i in 0..<n {
                let k = i % 3
                v[i] = (p[i] / 255.0 - m[k]) / s[k]
            }
        case .scale:
            for i in 0..<n { v[i] = p[i] / 255.0 }
        case .none:
            v = p
        case .affine(let scale, let offset):
            for i in 0..<n { v[i] = p[i] * scale + offset }
        }
        return v
    }
}

extension Preprocessing {
    /// The keras.applications name, or the affine map written out.
    public var description: String {
        switch self {
        case .caffe: return "caffe"
        case .tf: return "tf"
        case .torch: return "torch"
        case .scale: return "scale"
        case .none: return "none"
        case .affine(let scale, let offset): return "custom: x × \(scale) + \(offset)"
        }
    }
}
