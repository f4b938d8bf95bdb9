import Foundation

/// A parsed JSON value (Keras' model configs are plain JSON).
enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    static func parse(_ data: Data, what: String) throws -> JSON {
        do {
            return try JSONDecoder().decode(JSON.self, from: data)
        } catch {
            // Python's json writes NaN / Infinity, which only JSON5 accepts. Foundation's JSON5
            // reader traps on invalid UTF-8 instead of throwing (found by the keras-config fuzz
            // target), so only valid UTF-8 gets the second try.
            guard String(validating: data, as: UTF8.self) != nil else {
                throw KerasFormatError.invalidFile("\(what) is not valid JSON: it is not UTF-8 text")
            }
            let lenient = JSONDecoder()
            lenient.allowsJSON5 = true
            if let value = try? lenient.decode(JSON.self, from: data) { return value }
            throw KerasFormatError.invalidFile("\(what) is not valid JSON (\(error))")
        }
    }

    static func parse(_ text: String, what: String) throws -> JSON {
        try parse(Data(text.utf8), what: what)
    }

    subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var isNull: Bool { self == .null }
    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    var array: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }
    var object: [String: JSON]? {
        if case .object(let o) = self { return o }
        return nil
    }
    var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    var double: Double? {
        if case .number(let d) = self { return d }
        return nil
    }
    /// An exactly integral number.
    var int: Int? {
        if case .number(let d) = self, d.rounded() == d, abs(d) < 1e15 { return Int(d) }
        return nil
    }

    /// Compact text for error messages.
    var compact: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let d): return d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.compact).joined(separator: ", ") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { "\"\($0)\": \(o[$0]!.compact)" }.joined(separator: ", ") + "}"
        }
    }
}

extension JSON: Decodable {
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
            return
        }
        if let b = try? c.decode(Bool.self) {
            self = .bool(b)
            return
        }
        if let d = try? c.decode(Double.self) {
            self = .number(d)
            return
        }
        if let s = try? c.decode(String.self) {
            self = .string(s)
            return
        }
        if let a = try? c.decode([JSON].self) {
            self = .array(a)
            return
        }
        if let o = try? c.decode([String: JSON].self) {
            self = .object(o)
            return
        }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "unrecognised JSON value")
    }
}
