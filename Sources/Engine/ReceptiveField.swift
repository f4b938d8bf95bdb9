/// Where in the input image each output position of a spatial node looks: for every row
/// index the range of image rows it depends on, for every column index the range of image
/// columns (nil: a position that sees only padding). Rows and columns are independent
/// because every spatial layer acts on them separately.
///
/// Computed through the layer graph position by position, so edges are exact: a window of
/// k cells (dilation d, stride s, p padding cells before) at output index i reads input
/// cells i·s − p + t·d (t < k) that exist, and sees the union of what they see; zero
/// padding and cropping shift; per-position layers (activations, normalisations, affine)
/// keep it; where branches meet (Add, Multiply, Concatenate) the ranges join. An input that
/// is not a feature map (a squeeze-and-excitation gate, a global pool broadcast back)
/// reaches every position and is left out: the field is what the convolutions see.
public struct ReceptiveField: Sendable, Equatable {
    public var rows: [ClosedRange<Int>?]
    public var columns: [ClosedRange<Int>?]

    public init(rows: [ClosedRange<Int>?], columns: [ClosedRange<Int>?]) {
        self.rows = rows
        self.columns = columns
    }

    /// The box of output position (row, column), inclusive bounds; nil when it sees no pixel.
    public func box(row: Int, column: Int) -> (top: Int, left: Int, bottom: Int, right: Int)? {
        guard rows.indices.contains(row), columns.indices.contains(column), let r = rows[row], let c = columns[column] else {
            return nil
        }
        return (r.lowerBound, c.lowerBound, r.upperBound, c.upperBound)
    }
}

/// One axis: the window's output index i reads input cells i·stride − padBefore + t·dilation.
private func windowed(_ axis: [ClosedRange<Int>?], outputs: Int, kernel: Int, stride: Int, dilation: Int, padBefore: Int)
    -> [ClosedRange<Int>?]
{
    (0..<outputs).map { i in
        var seen: ClosedRange<Int>?
        for t in 0..<kernel {
            let j = i * stride - padBefore + t * dilation
            guard axis.indices.contains(j), let r = axis[j] else { continue }
            seen = seen.map { min($0.lowerBound, r.lowerBound)...max($0.upperBound, r.upperBound) } ?? r
        }
        return seen
    }
}

/// One axis shifted: output index i is input index i + offset (nil where that is outside).
private func shifted(_ axis: [ClosedRange<Int>?], outputs: Int, offset: Int) -> [ClosedRange<Int>?] {
    (0..<outputs).map { i in axis.indices.contains(i + offset) ? axis[i + offset] : nil }
}

extension Network {
    /// Every node's receptive field for an input of `height × width` pixels; nil for nodes
    /// whose output is not a feature map tied to image positions (flattened, globally
    /// pooled, dense, reshaped) and for branches that join feature maps of different sizes.
    public func receptiveFields(height: Int, width: Int) throws -> [ReceptiveField?] {
        let shapes = try outputShapes(forInput: [height, width] + Array(inputShape.dropFirst(2)))
        var fields: [ReceptiveField?] = [ReceptiveField(rows: (0..<height).map { $0...$0 }, columns: (0..<width).map { $0...$0 })]
        for node in nodes.dropFirst() {
            let ins = node.inputs.map { fields[$0] }
            let out = shapes[node.id]
            guard out.count == 3 else {
                fields.append(nil)
                continue
            }
            let inShape = shapes[node.inputs[0]]
            func window(_ kernel: [Int], _ strides: [Int], _ dilation: [Int], _ padding: Padding) -> ReceptiveField? {
                guard let f = ins[0], inShape.count == 3 else { return nil }
                let pads = (0..<2).map {
                    padding.outputSizeAndPadding(input: inShape[$0], kernel: kernel[$0], stride: strides[$0], dilation: dilation[$0]).before
                }
                return ReceptiveField(
                    rows: windowed(
                        f.rows, outputs: out[0], kernel: kernel[0], stride: strides[0], dilation: dilation[0], padBefore: pads[0]),
                    columns: windowed(
                        f.columns, outputs: out[1], kernel: kernel[1], stride: strides[1], dilation: dilation[1], padBefore: pads[1]))
            }
            func shift(rows: Int, columns: Int) -> ReceptiveField? {
                ins[0].map {
                    ReceptiveField(
                        rows: shifted($0.rows, outputs: out[0], offset: rows),
                        columns: shifted($0.columns, outputs: out[1], offset: columns))
                }
            }
            switch node.layer {
            case let l as Conv2D: fields.append(window([l.kernel.shape[0], l.kernel.shape[1]], l.strides, l.dilation, l.padding))
            case let l as DepthwiseConv2D: fields.append(window([l.kernel.shape[0], l.kernel.shape[1]], l.strides, l.dilation, l.padding))
            case let l as MaxPooling2D: fields.append(window(l.poolSize, l.strides, [1, 1], l.padding))
            case let l as AveragePooling2D: fields.append(window(l.poolSize, l.strides, [1, 1], l.padding))
            case let l as ZeroPadding2D: fields.append(shift(rows: -l.top, columns: -l.left))
            case let l as Cropping2D: fields.append(shift(rows: l.top, columns: l.left))
            case is Activation, is BatchNormalization, is ChannelAffine, is Identity, is PReLU, is LayerNormalization, is Add,
                is Multiply, is Concatenate:
                fields.append(Self.joined(ins, height: out[0], width: out[1]))
            default:
                fields.append(nil)
            }
        }
        return fields
    }

    /// Position by position, the union of the inputs that are feature maps of this size.
    private static func joined(_ fields: [ReceptiveField?], height: Int, width: Int) -> ReceptiveField? {
        let present = fields.compactMap { $0 }.filter { $0.rows.count == height && $0.columns.count == width }
        guard var r = present.first else { return nil }
        func union(_ a: ClosedRange<Int>?, _ b: ClosedRange<Int>?) -> ClosedRange<Int>? {
            guard let a else { return b }
            guard let b else { return a }
            return min(a.lowerBound, b.lowerBound)...max(a.upperBound, b.upperBound)
        }
        for f in present.dropFirst() {
            r.rows = zip(r.rows, f.rows).map(union)
            r.columns = zip(r.columns, f.columns).map(union)
        }
        return r
    }
}
