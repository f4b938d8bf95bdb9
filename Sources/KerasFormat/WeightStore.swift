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
    /// `path`: the names of the nested models the layer is in, outermost first
    /// (empty for a layer of the top-level model).
    func variables(forLayer name: String, className: String, path: [String]) throws -> StoredVariables
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

    func variables(forLayer name: String, className: String, path: [String]) throws -> StoredVariables {
        // A nested model's weights all sit in the group of its outermost model,
        // named `<layer>/kernel:0` (or `.../<layer>/kernel`).
        let owner = path.first ?? name
        guard layerNames.contains(owner), try group.exists(owner) else { return .named([]) }
        let layer = try group.group(owner)
        var names = try layer.hasAttribute("weight_names") ? try layer.stringArrayAttribute("weight_names") : []
        if !path.isEmpty {
            names = names.filter { w in
                let parts = w.split(separator: "/")
                return parts.count >= 2 && parts[parts.count - 2] == name
            }
        }
        var result: [(name: String, tensor: Tensor)] = []
        for weightName in names {
            let short = Self.shortName(weightName)
            if result.contains(where: { $0.name == short }) {
                throw KerasFormatError.invalidLayer(
                    layer: name, className: className,
                    detail: "two stored weights are both called '\(short)' (\(names.joined(separator: ", ")))")
            }
            result.append((short, try layer.dataset(weightName)))
        }
        return .named(result)
    }
}

/// Keras 3 `model.weights.h5` inside a `.keras` zip: `layers/<snake_case class>[_k]/vars/0..n`
/// (a nested model's layers under `layers/<its path>/layers/...`). The `vars`
/// group names its layer in a `name` attribute (recent Keras 3 writes it);
/// without it, the path is derived as Keras derives it: the snake-cased class
/// name, numbered per class in the order of `model.layers`.
final class ZipWeightStore: WeightStore {
    private let root: HDF5Group
    /// "outer/inner/layer" (path + name joined by "/") → HDF5 path of its vars group.
    private var pathByLayer: [String: String] = [:]

    /// `useNameAttributes: false` ignores the `name` attributes (to test the derivation).
    init(root: HDF5Group, spec: ModelSpec, useNameAttributes: Bool = true) throws {
        self.root = root
        guard try root.exists("layers") else {
            // A model without any weights may have no `layers` group at all.
            return
        }
        var named: [String: String] = [:]
        var unnamed = false
        func walk(_ container: String, prefix: [String]) throws {
            for member in try root.group(container).memberNames() {
                let base = container + "/" + member
                let vars = base + "/vars"
                guard try root.exists(vars) else { continue }
                let group = try root.group(vars)
                if useNameAttributes, try group.hasAttribute("name") {
                    let name = try group.stringAttribute("name")
                    named[(prefix + [name]).joined(separator: "/")] = vars
                    if try root.exists(base + "/layers") { try walk(base + "/layers", prefix: prefix + [name]) }
                } else {
                    unnamed = true
                    return
                }
            }
        }
        try walk("layers", prefix: [])
        if !unnamed {
            pathByLayer = named
            return
        }
        // Derive the paths from the layer order.
        func derive(_ model: ModelSpec, container: String, prefix: [String]) {
            var used: [String: Int] = [:]
            for layer in model.layers {
                // Sequential.layers leaves out the InputLayer.
                if model.kind == .sequential && layer.className == "InputLayer" { continue }
                let base = Self.snakeCase(layer.className)
                let name: String
                if let n = used[base] {
                    used[base] = n + 1
                    name = "\(base)_\(n + 1)"
                } else {
                    used[base] = 0
                    name = base
                }
                pathByLayer[(prefix + [layer.name]).joined(separator: "/")] = "\(container)/\(name)/vars"
                if let nested = layer.nested {
                    derive(nested, container: "\(container)/\(name)/layers", prefix: prefix + [layer.name])
                }
            }
        }
        derive(spec, container: "layers", prefix: [])
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

    func variables(forLayer name: String, className: String, path owners: [String]) throws -> StoredVariables {
        guard let path = pathByLayer[(owners + [name]).joined(separator: "/")], try root.exists(path) else {
            return .ordered([])
        }
        let vars = try root.group(path)
        let members = try vars.memberNames()
        var tensors: [Tensor] = []
        for i in 0..<members.count {
            guard members.contains(String(i)) else {
                throw KerasFormatError.invalidLayer(
                    layer: name, className: className,
                    detail: "stored variables are not numbered 0..<\(members.count): \(members.sorted())")
            }
            tensors.append(try vars.dataset(String(i)))
        }
        return .ordered(tensors)
    }
}
