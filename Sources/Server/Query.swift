import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Visualization

/// Query parameters, parsed by type: a value that is not of its parameter's type is a
/// `RequestError` (400) naming the parameter, what was given and what is allowed. Ranges
/// are the typed requests' business; `in:` checks the few that belong to the route.
struct Query {
    /// Percent-decoded values; the first of a repeated name wins.
    let parameters: [String: String]

    init(_ request: Request) {
        var p: [String: String] = [:]
        for (k, v) in request.uri.queryParameters where p[String(k)] == nil { p[String(k)] = String(v) }
        parameters = p
    }

    func string(_ name: String) -> String? {
        guard let v = parameters[name], !v.isEmpty else { return nil }
        return String(v)
    }

    /// An integer (nil when absent); one that does not fit in 64 bits is refused here.
    /// `range` is the request type's, named in the error so a typo says what is allowed.
    func int(_ name: String, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let text = string(name) else { return nil }
        guard let v = Int(text) else {
            throw RequestError.badParameter(
                name: name, value: text, allowed: "give an integer" + (range.map { " in \($0.lowerBound)...\($0.upperBound)" } ?? ""))
        }
        return v
    }

    func int(_ name: String, default value: Int, range: ClosedRange<Int>? = nil) throws -> Int { try int(name, range: range) ?? value }

    /// An integer in a range the route owns (not a request type's): checked here.
    func int(_ name: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
        let v = try int(name, default: value, range: range)
        guard range.contains(v) else {
            throw RequestError.badParameter(
                name: name, value: "\(v)", allowed: "give an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    /// Whether `text` is a number written in decimal: an optional sign, digits with at most
    /// one point, and an optional decimal exponent. Swift's `Float(_:)` also reads hexadecimal
    /// (`0x10` is 16), `inf` and `nan`, which no client means in a query.
    static func isDecimal(_ text: String) -> Bool {
        var bytes = Substring(text).utf8[...]
        func digits() -> Int {
            let n = bytes.prefix { (0x30...0x39).contains($0) }.count
            bytes = bytes.dropFirst(n)
            return n
        }
        if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        var mantissa = digits()
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            mantissa += digits()
        }
        guard mantissa > 0 else { return false }
        if let e = bytes.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }

    func float(_ name: String, range: ClosedRange<Float>? = nil) throws -> Float? {
        guard let text = string(name) else { return nil }
        guard Self.isDecimal(text), let v = Float(text), v.isFinite else {
            throw RequestError.badParameter(
                name: name, value: text, allowed: "give a number" + (range.map { " in \($0.lowerBound)...\($0.upperBound)" } ?? ""))
        }
        return v
    }

    func float(_ name: String, default value: Float, range: ClosedRange<Float>? = nil) throws -> Float {
        try float(name, range: range) ?? value
    }

    func double(_ name: String, default value: Double, in range: ClosedRange<Double>) throws -> Double {
        guard let text = string(name) else { return value }
        guard Self.isDecimal(text), let v = Double(text), v.isFinite, range.contains(v) else {
            throw RequestError.badParameter(name: name, value: text, allowed: "give a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    func bool(_ name: String, default value: Bool) throws -> Bool { try bool(name) ?? value }

    func bool(_ name: String) throws -> Bool? {
        guard let text = string(name)?.lowercased() else { return nil }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw RequestError.badParameter(name: name, value: text, allowed: "give true or false")
        }
    }

    func choice<T: RawRepresentable & CaseIterable>(_ name: String, default value: T) throws -> T where T.RawValue == String {
        try choice(name, default: value, among: T.allCases)
    }

    /// One of `allowed` (by raw value, any case).
    func choice<T: RawRepresentable>(_ name: String, default value: T, among allowed: some Collection<T>) throws -> T
    where T.RawValue == String {
        guard let text = string(name) else { return value }
        guard let v = T(rawValue: text.lowercased()), allowed.contains(where: { $0.rawValue == v.rawValue }) else {
            throw RequestError.badParameter(
                name: name, value: text, allowed: "give one of \(allowed.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }
}

/// Query parameters → typed requests: the names and defaults of the HTTP API. Every
/// range is checked by the request's `canonical(for:)`.
extension Query {
    func heatmapRequest() throws -> HeatmapRequest {
        var r = HeatmapRequest()
        r.method = try choice("method", default: r.method)
        r.classChoice = string("class")
        r.classes = string("classes").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        r.target = try string("target").map { _ in try choice("target", default: TargetDirection.increase) }
        r.region = try string("region").map { try PixelRegion(parsing: $0) }
        r.layer = string("layer")
        r.postActivation = try postActivation(default: r.postActivation)
        r.eigenSmooth = try bool("eigen_smooth", default: r.eigenSmooth)
        r.augSmooth = try bool("aug_smooth", default: r.augSmooth)
        r.alpha = try float("alpha", default: r.alpha, range: HeatmapRequest.alphaRange)
        r.colormap = try choice("colormap", default: r.colormap)
        r.show = try choice("show", default: r.show)
        r.displayPercentile = try float("percentile", range: HeatmapRequest.percentileRange)
        r.top = try int("top", default: r.top, range: HeatmapRequest.topRange)
        r.format = try choice("format", default: r.format)
        r.metrics = try list("metrics")
        r.numerics = try choice("numerics", default: Numerics.exact)
        return r
    }

    /// A comma-separated list of a type's raw values (absent: empty).
    func list<T: RawRepresentable & CaseIterable>(_ name: String) throws -> [T] where T.RawValue == String {
        guard let text = string(name) else { return [] }
        return try text.split(separator: ",", omittingEmptySubsequences: false).map { part in
            guard let v = T(rawValue: String(part)) else {
                throw RequestError.badParameter(
                    name: name, value: String(part),
                    allowed: "a comma-separated list of " + T.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return v
        }
    }

    /// `post_activation`, or its older name `post_softmax`; both given must agree.
    func postActivation(default value: Bool) throws -> Bool {
        let named = try bool("post_activation")
        let alias = try bool("post_softmax")
        if let named, let alias, named != alias {
            throw RequestError.badParameter(
                name: "post_softmax", value: string("post_softmax") ?? "",
                allowed: "leave it out: it is the older name of post_activation, which says \(named)")
        }
        return named ?? alias ?? value
    }

    /// `methods` and `metrics` absent keep the request's defaults.
    func compareRequest() throws -> CompareRequest {
        var r = CompareRequest()
        if string("methods") != nil { r.methods = try list("methods") }
        if string("metrics") != nil { r.metrics = try list("metrics") }
        r.classChoice = string("class")
        r.target = try string("target").map { _ in try choice("target", default: TargetDirection.increase) }
        r.region = try string("region").map { try PixelRegion(parsing: $0) }
        r.layer = string("layer")
        r.postActivation = try postActivation(default: r.postActivation)
        r.alpha = try float("alpha", default: r.alpha, range: HeatmapRequest.alphaRange)
        r.colormap = try choice("colormap", default: r.colormap)
        r.overlaySize = try int("overlay_size", default: r.overlaySize, range: CompareRequest.overlaySizeRange)
        return r
    }

    func activationsRequest() throws -> ActivationsRequest {
        var r = ActivationsRequest(layer: string("layer"))
        r.cols = try int("cols", default: r.cols, range: ActivationsRequest.colsRange)
        r.colormap = try choice("colormap", default: r.colormap)
        r.channel = try int("channel", range: 0...Int.max)
        r.format = try choice("format", default: r.format)
        r.numerics = try choice("numerics", default: Numerics.exact)
        return r
    }

    func predictRequest() throws -> PredictRequest {
        PredictRequest(
            top: try int("top", default: 5, range: PredictRequest.topRange), output: try bool("output", default: false),
            numerics: try choice("numerics", default: Numerics.exact))
    }

    /// One filter (`index`) or a grid (`first`, `count`, `cols`); without `size`, the
    /// service fills in `filters.size` (a model that takes any size) or the model's own.
    func filterRequest(layer: String, index: Int?) throws -> FilterRequest {
        var r = FilterRequest(
            layer: layer, first: try index ?? int("first", default: 0),
            count: index == nil ? try int("count", range: FilterRequest.countRange) : 1)
        if index == nil { r.cols = try int("cols", default: r.cols, range: FilterRequest.colsRange) }
        // A grid's default is auto (the book where it leaves structure); one filter's the book's.
        r.method = try choice("method", default: index == nil ? .auto : .book)
        r.objective = try choice("objective", default: r.objective)
        r.steps = try int("steps", range: FilterRequest.stepsRange)
        r.step = try float("step", default: r.step, range: FilterRequest.stepRange)
        r.size = try int("size", range: FilterRequest.sizeRange)
        r.seed = try int("seed", default: r.seed, range: FilterRequest.seedRange)
        r.format = try choice("format", default: r.format, among: [OutputFormat.png, .npy])
        return r
    }
}
