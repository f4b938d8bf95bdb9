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
