import Engine
import Foundation
import Imaging
import KerasFormat

/// Turns image bytes into the tensor a model expects: decode, resize to the
/// model's input size, scale the pixels the way the model was trained.
public struct InputPipeline: Sendable {
    public var width: Int
    public var height: Int
    public var filter: ResizeFilter
    /// Crop the largest centred box of the target aspect before resizing
    /// (Keras' `load_img(keep_aspect_ratio=True)`); off by default, as in Keras.
    public var centreCrop: Bool
    public var preprocessing: Preprocessing
    /// Where the preprocessing choice came from, for summaries: `profile`, `detected from model name '…'`, or `default`.
    public var preprocessingSource: String
    /// The channels the model takes, as `keras.utils.load_img(color_mode=…)` gives them:
    /// grey for 1 channel, RGBA for 4, else RGB.
    public var layout: DecodedLayout = .rgb
    /// The model resizes its input itself (an any-size input whose first layers hold a
    /// `Resizing` or `CenterCrop`): photos go in at their own size, no resize in front of the model's.
    public var ownSize = false

    public init(
        width: Int, height: Int, filter: ResizeFilter, centreCrop: Bool = false,
        preprocessing: Preprocessing, preprocessingSource: String = "given"
    ) {
        self.width = width
        self.height = height
        self.filter = filter
        self.centreCrop = centreCrop
        self.preprocessing = preprocessing
        self.preprocessingSource = preprocessingSource
    }

    /// The pipeline a model's profile describes. The size comes from the network's
    /// input when fixed, else the profile, else `fallbackSize`. Without a
    /// profile entry the preprocessing is detected from keras.applications model
    /// names where that is unambiguous, else none (raw 0–255 pixels).
    public init(profile: ModelProfile, model: KerasModel, fallbackSize: Int = 224) throws {
        let shape = model.network.inputShape
        guard shape.count == 3, [1, 3, 4, -1].contains(shape[2]) else {
            throw VisualizationError.invalid(
                "the model's input \(shape) is not an image (height, width, and 1, 3 or 4 channels)")
        }
        height = shape[0] != -1 ? shape[0] : (profile.inputSize?.first ?? fallbackSize)
        width = shape[1] != -1 ? shape[1] : (profile.inputSize?.last ?? fallbackSize)
        filter = try Self.filter(named: profile.resize ?? "pil_bilinear")
        centreCrop = false
        layout = shape[2] == 1 ? .grey : shape[2] == 4 ? .rgba : .rgb
        let leading = Self.leadingLayers(model.network)
        ownSize = shape[0] == -1 && shape[1] == -1 && profile.inputSize == nil && leading.contains { $0 is Resize2D }
        if let p = profile.preprocessing {
            preprocessing = try Self.preprocessing(p)
            preprocessingSource = "profile"
        } else if let scaling = leading.first(where: { $0.kind == "Rescaling" || $0.kind == "Normalization" }) {
            preprocessing = .none
            preprocessingSource = "the model scales its pixels itself (its layer '\(scaling.name)', \(scaling.kind)): raw 0–255 pixels"
        } else if let (mode, family) = Self.detect(modelName: model.name) {
            preprocessing = mode
            preprocessingSource = "detected from model name '\(model.name)' (keras.applications \(family))"
        } else {
            preprocessing = .none
            preprocessingSource = "default (no profile): raw 0–255 pixels"
        }
    }

    /// Decodes and prepares one image. Returns the model input [1, h, w, c] and
    /// the resized 8-bit RGB image the heatmaps are drawn over.
    public func prepare(_ data: Data, maxPixels: Int = 50_000_000) throws -> (input: Tensor, resized: Image) {
        try prepare(try decode(data, maxPixels: maxPixels))
    }

    /// The image in the model's channel layout, decoded as `keras.utils.load_img` decodes it
    /// (Pillow): alpha dropped, not composited (kept for an RGBA model), EXIF orientation not
    /// applied, no gamma curve, 16-bit samples by their high byte.
    public func decode(_ data: Data, maxPixels: Int = 50_000_000) throws -> Image {
        try decodeImage(
            data, options: DecodeOptions(maxPixels: maxPixels, layout: layout, applyEXIFOrientation: false, discardAlpha: true))
    }

    /// The most pixels a photo keeps when the model resizes it itself: larger photos are
    /// first reduced to this (aspect kept), which bounds the memory of the first layers.
    public static let ownSizeMaxPixels = 4_194_304

    /// The model input for an image of any layout, and the image at the size the model
    /// took it (in the model's layout; the photo itself when the model resizes it).
    public func prepare(_ image: Image) throws -> (input: Tensor, resized: Image) {
        let own = image.converted(to: layout)
        let resized: Image
        if ownSize {
            let pixels = own.width * own.height
            if pixels <= Self.ownSizeMaxPixels {
                resized = own
            } else {
                let shrink = (Double(Self.ownSizeMaxPixels) / Double(pixels)).squareRoot()
                resized = try own.resizedLikeKeras(
                    width: max(1, Int(Double(own.width) * shrink)), height: max(1, Int(Double(own.height) * shrink)), filter: filter,
                    keepAspectRatio: false)
            }
        } else {
            resized = try own.resizedLikeKeras(width: width, height: height, filter: filter, keepAspectRatio: centreCrop)
        }
        let floats = try resized.preprocessed(preprocessing)
        return (Tensor(shape: [1, resized.height, resized.width, floats.channels], scalars: floats.values), resized)
    }

    /// The layers a photo meets first, in a chain from the input: those that pass it
    /// through (augmentation), scale it (Rescaling, Normalization) or resize it.
    static func leadingLayers(_ network: Network) -> [any Layer] {
        var found: [any Layer] = []
        var id = 0
        while found.count < 64 {
            let readers = network.nodes.filter { $0.inputs.contains(id) }
            guard readers.count == 1, readers[0].inputs == [id], let layer = readers[0].layer,
                layer is Identity || layer is ChannelAffine || layer is Resize2D
            else { break }
            found.append(layer)
            id = readers[0].id
        }
        return found
    }

    public static func filter(named name: String) throws -> ResizeFilter {
        switch name.lowercased() {
        case "pil_bilinear", "bilinear": return .bilinear
        case "pil_nearest", "nearest": return .nearest
        default: throw VisualizationError.invalid("unknown resize method '\(name)' (pil_bilinear or pil_nearest)")
        }
    }

    public static func preprocessing(_ p: ModelProfile.Preprocessing) throws -> Preprocessing {
        switch p.mode {
        case "caffe": return .caffe
        case "tf": return .tf
        case "torch": return .torch
        case "scale": return .scale
        case "none": return .none
        case "custom":
            guard let scale = p.scale, let offset = p.offset else {
                throw VisualizationError.invalid("preprocessing mode 'custom' needs 'scale' and 'offset'")
            }
            return .affine(scale: Float(scale), offset: Float(offset))
        default:
            throw VisualizationError.invalid("unknown preprocessing mode '\(p.mode)' (caffe, tf, torch, scale, none or custom)")
        }
    }

    public static func preprocessing(named name: String) throws -> Preprocessing {
        try preprocessing(ModelProfile.Preprocessing(mode: name, scale: nil, offset: nil))
    }

    /// keras.applications' `preprocess_input` convention by the model's default name.
    /// EfficientNet, EfficientNetV2 and ConvNeXt carry their own Rescaling/Normalization
    /// layers, so they take raw pixels.
    static func detect(modelName: String) -> (Preprocessing, String)? {
        let n = modelName.lowercased()
        let table: [(prefix: String, mode: Preprocessing, family: String)] = [
            ("vgg16", .caffe, "VGG16"), ("vgg19", .caffe, "VGG19"),
            ("resnet50v2", .tf, "ResNetV2"), ("resnet101v2", .tf, "ResNetV2"), ("resnet152v2", .tf, "ResNetV2"),
            ("resnet", .caffe, "ResNet"),
            ("mobilenetv3", .none, "MobileNetV3"), ("mobilenet", .tf, "MobileNet"), ("xception", .tf, "Xception"),
            ("inception", .tf, "Inception"),
            ("nasnet", .tf, "NASNet"), ("densenet", .torch, "DenseNet"),
            ("efficientnet", .none, "EfficientNet"), ("convnext", .none, "ConvNeXt"),
        ]
        for entry in table where n.hasPrefix(entry.prefix) { return (entry.mode, entry.family) }
        return nil
    }
}
