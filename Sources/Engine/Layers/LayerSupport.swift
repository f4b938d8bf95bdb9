// Checks shared by the layers: every malformed input becomes an
// `EngineError.shapeMismatch` naming the layer, never a crash.

extension Layer {
    func mismatch(_ detail: String) -> EngineError {
        .shapeMismatch(layer: name, detail: detail)
    }

    /// The only input of a single-input layer.
    func singleInput(_ inputs: [Tensor]) throws -> Tensor {
        guard inputs.count == 1 else { throw mismatch("\(kind) takes 1 input, got \(inputs.count)") }
        return inputs[0]
    }

    /// The only per-sample shape of a single-input layer.
    func singleShape(_ shapes: [[Int]]) throws -> [Int] {
        guard shapes.count == 1 else { throw mismatch("\(kind) takes 1 input, got \(shapes.count)") }
        return shapes[0]
    }

    /// A feature map `[n, h, w, c]` with known channel count `channels` (nil: any).
    func checkFeatureMap(_ x: Tensor, channels: Int?) throws {
        guard x.rank == 4 else { throw mismatch("expected a [batch, height, width, channels] input, got \(x.shape)") }
        if let channels, x.shape[3] != channels {
            throw mismatch("expected \(channels) input channels, got \(x.shape[3]) (input \(x.shape))")
        }
    }

    /// A per-sample feature-map shape `[h, w, c]`; -1 allowed for h and w.
    func checkFeatureMapShape(_ s: [Int], channels: Int?) throws {
        guard s.count == 3 else { throw mismatch("expected a [height, width, channels] input, got \(s)") }
        guard s[0] == -1 || s[0] > 0, s[1] == -1 || s[1] > 0 else { throw mismatch("invalid input shape \(s)") }
        if let channels, s[2] != channels {
            throw mismatch("expected \(channels) input channels, got \(s[2]) (input \(s))")
        }
    }

    /// A global pooling's output shape: `[h, w, c]` → `[c]`, or `[1, 1, c]` keeping dims.
    func globalPoolingShape(_ shapes: [[Int]], keepDims: Bool) throws -> [Int] {
        let s = try singleShape(shapes)
        try checkFeatureMapShape(s, channels: nil)
        return keepDims ? [1, 1, s[2]] : [s[2]]
    }
}

/// Validates a two-element list of positive integers (strides, pool sizes, dilations).
func checkPair(_ v: [Int], _ what: String) -> String? {
    v.count == 2 && v.allSatisfy({ $0 > 0 }) ? nil : "\(what) must be two positive integers, got \(v)"
}

/// Copies the rows of a small map `[n, h, w, c]` to or from its place in a
/// larger `[n, bigHeight, bigWidth, c]` map, `top` rows down and `left` columns
/// in. Padding and cropping are this copy in opposite directions: ZeroPadding2D
/// writes into the big map forward and reads it back backward, Cropping2D the reverse.
func copyInteriorRows(
    n: Int, h: Int, w: Int, c: Int, bigHeight: Int, bigWidth: Int, top: Int, left: Int,
    from src: UnsafeBufferPointer<Float>, to dst: UnsafeMutableBufferPointer<Float>, intoBig: Bool
) {
    let row = w * c
    guard row > 0, h > 0 else { return }
    for b in 0..<n {
        for y in 0..<h {
            let small = (b * h + y) * row
            let big = ((b * bigHeight + y + top) * bigWidth + left) * c
            if intoBig {
                (dst.baseAddress! + big).update(from: src.baseAddress! + small, count: row)
            } else {
                (dst.baseAddress! + small).update(from: src.baseAddress! + big, count: row)
            }
        }
    }
}

/// For each position of a tensor shaped `out`, the flat index into a tensor shaped
/// `shape` of the same rank broadcast to it (its size-1 axes repeat). Multiply and PReLU use it.
func broadcastSourceIndex(of shape: [Int], in out: [Int]) -> [Int] {
    if shape == out { return Array(0..<out.reduce(1, *)) }
    let rank = out.count
    var strides = [Int](repeating: 0, count: rank)
    var s = 1
    for i in stride(from: rank - 1, through: 0, by: -1) {
        strides[i] = shape[i] == 1 ? 0 : s
        s *= shape[i]
    }
    let count = out.reduce(1, *)
    var index = [Int](repeating: 0, count: count)
    var coordinate = [Int](repeating: 0, count: rank)
    for p in 0..<count {
        var flat = 0
        for i in 0..<rank { flat += coordinate[i] * strides[i] }
        index[p] = flat
        var axis = rank - 1
        while axis >= 0 {
            coordinate[axis] += 1
            if coordinate[axis] < out[axis] { break }
            coordinate[axis] = 0
            axis -= 1
        }
    }
    return index
}
