import Engine
import Foundation

/// A layer's stored variables as the file holds them.
enum StoredVariables {
    /// Legacy HDF5 (`model.save("m.h5")`, Keras 2 and 3): each variable has a
    /// name (`kernel`, `bias`, `gamma`, ... — the last path component of its
    /// weight name, without `:0`), in the layer's weight order.
    case named([(name: String, tensor: Tensor)])
    /// `.keras` zip: `vars/0`, `vars/1`, ... in the layer class's own variable
    /// order; the builder knows that order.
    case ordered([Tensor])

    var isEmpty: Bool {
        switch self {
        case .named(let n): return n.isEmpty
        case .ordered(let o): return o.isEmpty
        }
    }
}

/// Where layer weights come from.
protocol WeightStore: AnyObject {
    func variables(forLayer name: String, className: String) throws -> StoredVariables
}

/// `model_weights/<layer>` groups with a `weight_names` attribute (Keras 2 writes
/// `conv/kernel:0`, Keras 3 `conv/kernel` or `model/conv/kernel`), each weight a
/// dataset at that relative path.
final class LegacyHDF5WeightStore: WeightStore {
    private let group: HDF5Group
    private let layerNames: Set<String>

    init(root: HDF5Group) throws {
        guard try root.exists("model_weights") else {
            throw KerasFormatError.invalidFile("the HDF5 file has a model_config but no model_weights group")
        }
        group = try root.group("model_weights")
        if try group.hasAttribute("layer_names") {
            layerNames = Set(try group.stringArrayAttribute("layer_names"))
        } else {
            layerNames = Set(try group.memberNames())
        }
    }

    static func shortName(_ weightName: String) -> String {
        var last = weightName.split(separator: "/").last.map(String.init) ?? weightName
        if let colon = last.lastIndex(of: ":"), last[last.index(after: colon)...].allSatisfy(\.isNumber) {
            last = String(last[..<colon])
        }
        return last
    }

    func variables(forLayer name: String, className: String) throws -> StoredVariables {
        guard layerNames.contains(name), try group.exists(name) else { return .named([]) }
        let layer = try group.group(name)
        let names = try layer.hasAttribute("weight_names") ? try layer.stringArrayAttribute("weight_names") : []
        var result: [(name: String, tensor: Tensor)] = []
        for weightName in names {
            let short = Self.shortName(weightName)
            if result.contains(where: { $0.name == short }) {
                throw KerasFormatError.invalidLayer(layer: name, className: className,
                    detail: "two stored weights are both called '\(short)' (\(names.joined(separator: ", ")))")
            }
            result.append((short, try layer.dataset(weightName)))
        }
        return .named(result)
    }
}

/// Keras 3 `model.weights.h5` inside a `.keras` zip: `layers/<snake_case class>[_k]/vars/0..n`.
/// The `vars` group names its layer in a `name` attribute (Keras ≥ 3.x writes
/// it); without it, the path is derived as Keras derives it: the snake-cased
/// class name, numbered per class in the order of `model.layers`.
final class ZipWeightStore: WeightStore {
    private let root: HDF5Group
    private var pathByLayer: [String: String] = [:]

    /// `layers`: every layer of the model in config order (`name`, `className`).
    /// `useNameAttributes: false` ignores the `name` attributes (to test the derivation).
    init(root: HDF5Group, layers: [(name: String, className: String)], sequential: Bool,
         useNameAttributes: Bool = true) throws {
        self.root = root
        guard try root.exists("layers") else {
            // A model without any weights may have no `layers` group at all.
            return
        }
        let container = try root.group("layers")
        var named: [String: String] = [:]
        var unnamed = false
        for member in try container.memberNames() {
            let path = "layers/" + member + "/vars"
            guard try root.exists(path) else { continue }
            let vars = try root.group(path)
            if useNameAttributes, try vars.hasAttribute("name") {
                named[try vars.stringAttribute("name")] = path
            } else {
                unnamed = true
            }
        }
        if !unnamed {
            pathByLayer = named
            return
        }
        // Derive the paths from the layer order.
        var used: [String: Int] = [:]
        for layer in layers {
            // Sequential.layers leaves out the InputLayer.
            if sequential && layer.className == "InputLayer" { continue }
            let base = Self.snakeCase(layer.className)
            let name: String
            if let n = used[base] {
                used[base] = n + 1
                name = "\(base)_\(n + 1)"
            } else {
                used[base] = 0
                name = base
            }
            pathByLayer[layer.name] = "layers/\(name)/vars"
        }
    }

    /// Keras' `naming.to_snake_case`.
    static func snakeCase(_ name: String) -> String {
        let chars = Array(name.filter { $0.isLetter || $0.isNumber || $0 == "_" })
        // (.)([A-Z][a-z]+) → \1_\2
        var step1: [Character] = []
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if i > 0, c.isUppercase, i + 1 < chars.count, chars[i + 1].isLowercase {
                step1.append("_")
            }
            step1.append(c)
            i += 1
        }
        // ([a-z])([A-Z]) → \1_\2
        var step2: [Character] = []
        for (j, c) in step1.enumerated() {
            if j > 0, c.isUppercase, step1[j - 1].isLowercase { step2.append("_") }
            step2.append(c)
        }
        return String(step2).lowercased()
    }

    func variables(forLayer name: String, className: String) throws -> StoredVariables {
        guard let path = pathByLayer[name], try root.exists(path) else { return .ordered([]) }
        let vars = try root.group(path)
        let members = try vars.memberNames()
        var tensors: [Tensor] = []
        for i in 0..<members.count {
            guard members.contains(String(i)) else {
                throw KerasFormatError.invalidLayer(layer: name, className: className,
                    detail: "stored variables are not numbered 0..<\(members.count): \(members.sorted())")
            }
            tensors.append(try vars.dataset(String(i)))
        }
        return .ordered(tensors)
    }
}
