import Engine
import Foundation

/// What a map explains. Every target is a fixed linear functional of the score node's
/// output — score = Σ W · output for per-sample weights W shaped like that output — so its
/// backward seed is W itself, and the perturbation methods (Score-CAM, Ablation-CAM, the
/// faithfulness metrics) read the same functional on other inputs. Class k of a classifier
/// is a one-hot W; a regression output is ±1; class c of a segmentation is a mask of cells
/// ⊗ one-hot(c) (pytorch-grad-cam's `SemanticSegmentationTarget`).
public struct CAMTarget: Sendable, Equatable {
    public enum Selection: Sendable, Equatable {
        /// Unit k of a vector output (class k of a classifier, output k of a regression);
        /// nil: the top-scoring unit. On a per-pixel output it means `segment(k, nil)`.
        case unit(Int?)
        /// Class c of a per-pixel output [h, w, classes]: c's scores summed over the cells the
        /// region covers, or, without a region, over the cells whose argmax is c. nil class:
        /// the class that is the argmax of the most cells (of the region).
        case segment(classIndex: Int?, region: ImageRegion?)
        /// Weights resolved on the original image, for other inputs (augmented copies).
        case resolved(ResolvedTarget)
    }

    public var selection: Selection
    /// The functional negated: what lowers the score (`target=decrease`). On a one-unit
    /// sigmoid head it is the logit of class 0, −z (the probability of class 0 is σ(−z)).
    public var decrease: Bool

    public init(_ selection: Selection, decrease: Bool = false) {
        self.selection = selection
        self.decrease = decrease
    }

    /// Class k of a classifier (nil: its top class), today's one-hot target.
    public static func classIndex(_ k: Int?) -> CAMTarget { CAMTarget(.unit(k)) }

    /// The weights of this target on one sample's scores (the original image's forward
    /// pass): the argmax mask and the top class are fixed here, from these scores.
    public func resolve(_ scores: Tensor, sample n: Int = 0) throws -> ResolvedTarget {
        let per = scores.sampleCount
        guard n >= 0, n < scores.batch else { throw VisualizationError.invalid("sample \(n) of a batch of \(scores.batch)") }
        let row = Array(scores.scalars[(n * per)..<((n + 1) * per)])
        let shape = Array(scores.shape.dropFirst())
        var resolved: ResolvedTarget
        switch selection {
        case .resolved(let fixed):
            guard fixed.shape == shape else {
                throw VisualizationError.invalid("a target resolved on scores \(fixed.shape) cannot score \(shape)")
            }
            return fixed
        case .unit(let k) where shape.count != 3:
            let k = k ?? row.indices.max { row[$0] < row[$1] }!
            guard k >= 0, k < per else { throw RequestError.classOutOfRange(k, count: per) }
            var weights = [Float](repeating: 0, count: per)
            weights[k] = 1
            resolved = ResolvedTarget(classIndex: k, shape: shape, weights: weights, cells: nil)
        case .unit(let k):
            resolved = try Self.segment(row, shape: shape, classIndex: k, region: nil)
        case .segment(let c, let region):
            guard shape.count == 3 else {
                throw RequestError.badParameter(
                    name: region == nil ? "target" : "region", value: region.map { "\($0.box)" } ?? "segment",
                    allowed: "a segmentation target needs a per-pixel output (height, width, classes); this model's is \(shape)")
            }
            resolved = try Self.segment(row, shape: shape, classIndex: c, region: region)
        }
        if decrease {
            resolved.weights = resolved.weights.map { -$0 }
            resolved.decrease = true
        }
        return resolved
    }

    /// The mask ⊗ one-hot(c) weights of a per-pixel output [h, w, classes].
    private static func segment(_ row: [Float], shape: [Int], classIndex: Int?, region: ImageRegion?) throws -> ResolvedTarget {
        let (h, w, classes) = (shape[0], shape[1], shape[2])
        // The argmax of each cell (the first on a tie, as NumPy's argmax).
        var argmax = [Int](repeating: 0, count: h * w)
        for p in 0..<(h * w) {
            var best = 0
            for c in 1..<max(classes, 1) where row[p * classes + c] > row[p * classes + best] { best = c }
            argmax[p] = best
        }
        let inRegion: [Bool]
        if let region {
            let cells = try region.cells(gridWidth: w, gridHeight: h)
            inRegion = (0..<(h * w)).map { p in cells.rows.contains(p / w) && cells.columns.contains(p % w) }
        } else {
            inRegion = [Bool](repeating: true, count: h * w)
        }
        let c: Int
        if let classIndex {
            c = classIndex
        } else {
            var owned = [Int](repeating: 0, count: classes)
            for p in argmax.indices where inRegion[p] { owned[argmax[p]] += 1 }
            c = owned.indices.max { owned[$0] < owned[$1] || (owned[$0] == owned[$1] && $0 > $1) }!
        }
        guard c >= 0, c < classes else { throw RequestError.classOutOfRange(c, count: classes) }
        var weights = [Float](repeating: 0, count: row.count)
        var cells = 0
        for p in 0..<(h * w) where inRegion[p] && (region != nil || argmax[p] == c) {
            weights[p * classes + c] = 1
            cells += 1
        }
        return ResolvedTarget(classIndex: c, shape: shape, weights: weights, cells: cells)
    }
}

/// A target's weights on the score node's output, fixed from the original image.
public struct ResolvedTarget: Sendable, Equatable {
    /// The class explained (a classifier's class, a segmentation class, a regression's unit).
    public var classIndex: Int
    /// The score node's per-sample shape.
    public var shape: [Int]
    /// W, one per element of a sample of the score node's output (negated for `decrease`).
    public var weights: [Float]
    /// A segmentation target's cells (nil for a unit of a vector output).
    public var cells: Int?
    public var decrease = false

    /// Σ W · output of sample `n` (accumulated in Double: a one-hot gives the unit exactly).
    public func score(_ scores: Tensor, sample n: Int = 0) -> Float {
        score(of: scores.scalars[(n * weights.count)..<((n + 1) * weights.count)])
    }

    /// Σ W · values for one sample's values.
    func score(of values: ArraySlice<Float>) -> Float {
        var sum = 0.0
        var i = values.startIndex
        for w in weights {
            if w != 0 { sum += Double(w) * Double(values[i]) }
            i += 1
        }
        return Float(sum)
    }

    /// The backward seed of every sample of a batch of scores: W for each.
    public func seed(like scores: Tensor) -> Tensor {
        var seed = Tensor(zeros: scores.shape)
        let per = weights.count
        for n in 0..<scores.batch { for i in 0..<per where weights[i] != 0 { seed.scalars[n * per + i] = weights[i] } }
        return seed
    }

    /// The target for the input mirrored left-right: a per-pixel mask mirrored with it.
    func mirrored() -> ResolvedTarget {
        guard shape.count == 3 else { return self }
        let (w, c) = (shape[1], shape[2])
        var out = self
        for i in weights.indices {
            let (p, k) = (i / c, i % c)
            let (row, col) = (p / w, p % w)
            out.weights[i] = weights[(row * w + w - 1 - col) * c + k]
        }
        return out
    }
}

/// A box in an image's pixels, half-open: x0 ≤ x < x1, y0 ≤ y < y1 (`region=x0,y0,x1,y1`).
/// Canonical text: the four integers joined by commas.
public struct PixelRegion: Sendable, Hashable, Codable, CustomStringConvertible {
    public var x0: Int
    public var y0: Int
    public var x1: Int
    public var y1: Int

    /// Bound of every coordinate, checked before any arithmetic (a decoded image is far smaller).
    public static let coordinateRange = 0...(1 << 20)

    public init(x0: Int, y0: Int, x1: Int, y1: Int) throws {
        for (name, v) in [("x0", x0), ("y0", y0), ("x1", x1), ("y1", y1)] {
            guard Self.coordinateRange.contains(v) else {
                throw RequestError.badParameter(
                    name: "region", value: "\(x0),\(y0),\(x1),\(y1)",
                    allowed: "\(name) must be an integer in 0...\(Self.coordinateRange.upperBound)")
            }
        }
        guard x0 < x1, y0 < y1 else {
            throw RequestError.badParameter(
                name: "region", value: "\(x0),\(y0),\(x1),\(y1)", allowed: "give x0,y0,x1,y1 with x0 < x1 and y0 < y1 (image pixels)")
        }
        (self.x0, self.y0, self.x1, self.y1) = (x0, y0, x1, y1)
    }

    /// `x0,y0,x1,y1`; throws `RequestError` naming `region`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        guard parts.count == 4, let x0 = parts[0], let y0 = parts[1], let x1 = parts[2], let y1 = parts[3] else {
            throw RequestError.badParameter(
                name: "region", value: text, allowed: "give four integers x0,y0,x1,y1 (image pixels, x1 and y1 excluded)")
        }
        try self.init(x0: x0, y0: y0, x1: x1, y1: y1)
    }

    public var description: String { "\(x0),\(y0),\(x1),\(y1)" }

    public init(from decoder: Decoder) throws {
        self = try PixelRegion(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// A region of the image a model input was made from, with that image's size: what maps
/// the box to an output's grid.
public struct ImageRegion: Sendable, Equatable {
    public var box: PixelRegion
    public var imageWidth: Int
    public var imageHeight: Int

    /// Refuses a box that does not lie inside the image, naming `region`.
    public init(_ box: PixelRegion, imageWidth: Int, imageHeight: Int) throws {
        guard box.x1 <= imageWidth, box.y1 <= imageHeight, imageWidth > 0, imageHeight > 0 else {
            throw RequestError.badParameter(
                name: "region", value: box.description,
                allowed: "the box must lie inside the \(imageWidth)x\(imageHeight) image: x1 ≤ \(imageWidth), y1 ≤ \(imageHeight)")
        }
        (self.box, self.imageWidth, self.imageHeight) = (box, imageWidth, imageHeight)
    }

    /// The grid cells the box covers (any overlap counts): a cell spans the image pixels
    /// [j·W/w, (j+1)·W/w), so columns ⌊x0·w/W⌋ ..< ⌈x1·w/W⌉, rows likewise — never empty.
    func cells(gridWidth w: Int, gridHeight h: Int) throws -> (rows: Range<Int>, columns: Range<Int>) {
        guard w > 0, h > 0 else { throw VisualizationError.invalid("an output grid of \(w)x\(h) cells") }
        let columns = (box.x0 * w / imageWidth)..<((box.x1 * w + imageWidth - 1) / imageWidth)
        let rows = (box.y0 * h / imageHeight)..<((box.y1 * h + imageHeight - 1) / imageHeight)
        return (rows, columns)
    }
}
