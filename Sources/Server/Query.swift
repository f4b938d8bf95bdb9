import Foundation
import HTTPTypes
import Hummingbird

/// Query parameters with range checks: a bad value is a 400 that names the parameter,
/// what was given and what is allowed.
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

    func int(_ name: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let text = string(name) else { return value }
        guard let v = Int(text), range.contains(v) else {
            throw APIError.badRequest("\(name)=\(text) is not allowed: give an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    func optionalInt(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard string(name) != nil else { return nil }
        return try int(name, default: 0, in: range)
    }

    func float(_ name: String, default value: Float, in range: ClosedRange<Float>) throws -> Float {
        guard let text = string(name) else { return value }
        guard let v = Float(text), v.isFinite, range.contains(v) else {
            throw APIError.badRequest("\(name)=\(text) is not allowed: give a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    func double(_ name: String, default value: Double, in range: ClosedRange<Double>) throws -> Double {
        guard let text = string(name) else { return value }
        guard let v = Double(text), v.isFinite, range.contains(v) else {
            throw APIError.badRequest("\(name)=\(text) is not allowed: give a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    func bool(_ name: String, default value: Bool) throws -> Bool {
        guard let text = string(name)?.lowercased() else { return value }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw APIError.badRequest("\(name)=\(text) is not allowed: give true or false")
        }
    }

    func choice<T: RawRepresentable & CaseIterable>(_ name: String, default value: T) throws -> T where T.RawValue == String {
        guard let text = string(name) else { return value }
        guard let v = T(rawValue: text.lowercased()) else {
            throw APIError.badRequest("\(name)=\(text) is not allowed: give one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return v
    }

    func choice(_ name: String, default value: String, among allowed: [String]) throws -> String {
        guard let text = string(name)?.lowercased() else { return value }
        guard allowed.contains(text) else {
            throw APIError.badRequest("\(name)=\(text) is not allowed: give one of \(allowed.joined(separator: ", "))")
        }
        return text
    }
}
