/// A mistake in what a user asked for: a parameter outside its range, a layer or
/// class that the model does not have, a layer without the shape a picture needs.
/// Every case names the parameter and says what is allowed. Front ends answer these
/// as the user's error (HTTP 400/404/422, a CLI message); anything else thrown while
/// rendering is a broken invariant (`VisualizationError`, HTTP 500, logged).
public enum RequestError: Error, CustomStringConvertible, Equatable, Sendable {
    /// `name=value` is not allowed; `allowed` says what is (a range, a list of choices).
    case badParameter(name: String, value: String, allowed: String)
    /// No layer of that name; `valid` lists the names that exist.
    case unknownLayer(String, valid: [String])
    /// A filter, channel or class index outside what the layer or model has.
    case outOfRange(String)
    case classOutOfRange(Int, count: Int)
    /// The layer's output is not a feature map (H, W, C) and the picture needs one.
    case notSpatial(layer: String, shape: [Int])
    /// The request cannot be answered for this model or input as given (e.g. an
    /// overlay without a photo, a model that takes no images); says why.
    case unsupported(String)
    /// The request would cost more than the limit a front end set; says how much and which limit.
    case tooCostly(String)
    /// The layer cannot be computed at the asked input size: a layer on its path (named
    /// in `detail`, with the sizes that work) depends on the size the model was saved with.
    case sizeDependentLayer(layer: String, detail: String)

    public var description: String {
        switch self {
        case .badParameter(let name, let value, let allowed): return "\(name)=\(value) is not allowed: \(allowed)"
        case .unknownLayer(let name, let valid): return "no layer named '\(name)'. Layers: \(valid.joined(separator: ", "))"
        case .outOfRange(let detail): return detail
        case .classOutOfRange(let k, let count): return "class \(k) is out of range: the model has \(count) outputs (0...\(count - 1))"
        case .notSpatial(let layer, let shape):
            return "layer '\(layer)' has output shape \(shape), not a spatial feature map (H, W, C)"
        case .unsupported(let detail), .tooCostly(let detail), .sizeDependentLayer(_, let detail): return detail
        }
    }

    /// Checks `value` against `range` before any arithmetic uses it.
    static func check(_ name: String, _ value: Int, in range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw RequestError.badParameter(
                name: name, value: "\(value)", allowed: "give an integer in \(range.lowerBound)...\(range.upperBound)")
        }
    }

    static func check(_ name: String, _ value: Float, in range: ClosedRange<Float>) throws {
        guard value.isFinite, range.contains(value) else {
            throw RequestError.badParameter(
                name: name, value: "\(value)", allowed: "give a number in \(range.lowerBound)...\(range.upperBound)")
        }
    }
}
