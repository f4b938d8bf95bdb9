import Foundation

/// Everything that can go wrong loading a Keras model file.
public enum KerasFormatError: Error, CustomStringConvertible, Sendable {
    /// The file does not exist or cannot be read.
    case unreadable(path: String, detail: String)
    /// A zero-byte file.
    case emptyFile(path: String)
    /// Neither HDF5 nor zip.
    case notAModelFile(path: String)
    /// An HDF5 or zip file that ends early (or is otherwise damaged).
    case truncated(path: String, detail: String)
    /// The container is fine but its content is not a Keras model as expected.
    case invalidFile(String)
    /// The model's graph is outside what the loader handles (several inputs, nested models, ...).
    case unsupportedModel(String)
    /// No builder for this layer class.
    case unsupportedLayer(layer: String, className: String)
    /// A class that cannot run here by its nature (it holds Python code), with what to do instead.
    case refusedLayer(layer: String, className: String, reason: String)
    /// A supported class with an option the engine does not implement.
    case unsupportedOption(layer: String, className: String, option: String)
    /// A layer whose config or weights are inconsistent.
    case invalidLayer(layer: String, className: String, detail: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let detail):
            return "cannot read '\(path)': \(detail)"
        case .emptyFile(let path):
            return "'\(path)' is empty (0 bytes)"
        case .notAModelFile(let path):
            return "'\(path)' is not an HDF5 (.h5) or .keras (zip) model file"
        case .truncated(let path, let detail):
            return "'\(path)' is truncated or damaged: \(detail)"
        case .invalidFile(let detail):
            return "invalid Keras model file: \(detail)"
        case .unsupportedModel(let detail):
            return "unsupported model: \(detail)"
        case .unsupportedLayer(let layer, let className):
            return "layer '\(layer)' (\(className)): unsupported layer class \(className)"
        case .refusedLayer(let layer, let className, let reason):
            return "layer '\(layer)' (\(className)): \(reason)"
        case .unsupportedOption(let layer, let className, let option):
            return "layer '\(layer)' (\(className)): unsupported option \(option)"
        case .invalidLayer(let layer, let className, let detail):
            return "layer '\(layer)' (\(className)): \(detail)"
        }
    }
}
