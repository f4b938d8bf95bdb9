/// Keras `Multiply`: the element-wise product of two or more inputs. Inputs of the
/// same rank may have size 1 where another has more (squeeze-and-excite multiplies a
/// [n, h, w, c] map by [n, 1, 1, c] weights), as Keras broadcasts them.
/// Backward: each input's gradient is the output gradient times the product of the
/// other inputs, summed over the positions it was broadcast to.
public final class Multiply: InPlaceLayer {
    public let name: String
    public var kind: String { "Multiply" }

    public init(name: String) {
        self.name = name
    }

    public func outputShape(for inputShapes: [[Int]]) throws -> [Int] {
        guard inputShapes.count >= 2 else { throw mismatch("Multiply takes at least 2 inputs, got \(inputShapes.count)") }
        guard inputShapes.allSatisfy({ $0.count == inputShapes[0].count }) else {
            throw mismatch("inputs differ in rank: \(inputShapes)")
        }
        var out = inputShapes[0]
        for s in inputShapes.dropFirst() {
            for i in 0..<s.count {
                if out[i] == 1 || out[i] == -1 && s[i] != 1 {
                    out[i] = s[i]
                } else if s[i] != 1 && s[i] != -1 && s[i] != out[i] {
                    throw mismatch("inputs cannot broadcast: \(inputShapes)")
                }
            }
        }
        return out
    }

    /// The broadcast output shape of concrete inputs.
    private func broadcastShape(_ inputs: [Tensor]) throws -> [Int] {
        guard inputs.count >= 2 else { throw mismatch("Multiply takes at least 2 inputs, got \(inputs.count)") }
        let rank = inputs[0].rank
        guard inputs.allSatisfy({ $0.rank == rank }) else { throw mismatch("inputs differ in rank: \(inputs.map(\.shape))") }
        var out = inputs[0].shape
        for t in inputs.dropFirst() {
            for i in 0..<rank where t.shape[i] != out[i] {
                if out[i] == 1 {
                    out[i] = t.shape[i]
                } else if t.shape[i] != 1 {
                    throw mismatch("inputs cannot broadcast: \(inputs.map(\.shape))")
                }
            }
        }
        return out
    }

    // MARK: forward

    /// The shape squeeze-and-excite multiplies: `big` [n, …, c] by `small` [n, 1, …, 1, c]
    /// (or two equal shapes, c = the whole sample). Returns c and the positions per sample.
    private static func channelBroadcast(_ big: [Int], _ small: [Int]) -> (channels: Int, positions: Int)? {
        // An empty map takes the general path (the fast loops step through rows of c > 0).
        guard big.count == small.count, big.count >= 2, big[0] == small[0], !big.contains(0) else { return nil }
        if big == small { return (big.dropFirst().reduce(1, *), 1) }
        guard small.last == big.last, small.dropFirst().dropLast().allSatisfy({ $0 == 1 }) else { return nil }
        return (big.last!, big.dropFirst().dropLast().reduce(1, *))
    }

    public func forward(_ inputs: [Tensor]) throws -> Tensor {
        var taken = inputs
        return try forward(consuming: &taken)
    }

    /// Squeeze-and-excite's product written over the map: one read and one
    /// write of it, on every compute thread.
    func forward(consuming inputs: inout [Tensor]) throws -> Tensor {
        if inputs.count == 2 {
            for i in 0..<2 {
                guard let (c, positions) = Self.channelBroadcast(inputs[i].shape, inputs[1 - i].shape) else { continue }
                let weights = inputs[1 - i]
                var map = inputs[i]
                inputs = []
                let n = map.shape[0]
                weights.scalars.withUnsafeBufferPointer { wb in
                    map.scalars.withUnsafeMutableBufferPointer { yb in
                        let (ws, ys) = (SharedPointer(wb), SharedPointer(yb))
                        parallelFor(n * positions, grain: max(1, (1 << 15) / c)) { rows in
                            let (w, y) = (ws.p, ys.p)
                            for row in rows {
                                let (y, w) = (y + row * c, w + row / positions * c)
                                for k in 0..<c { y[k] *= w[k] }
                            }
                        }
                    }
                }
                return map
            }
        }
        let out = try broadcastShape(inputs)
        let count = out.reduce(1, *)
        var y = [Float](repeating: 1, count: count)
        for t in inputs {
            let index = broadcastSourceIndex(of: t.shape, in: out)
            for p in 0..<count { y[p] *= t.scalars[index[p]] }
        }
        return Tensor(shape: out, scalars: y)
    }

    // MARK: backward to the input

    public func backward(_ inputs: [Tensor], output: Tensor, outputGradient: Tensor) throws -> [Tensor] {
        let out = try broadcastShape(inputs)
        guard outputGradient.shape == out else {
            throw mismatch("output gradient \(outputGradient.shape) does not match the output \(out)")
        }
        if inputs.count == 2,
            let (c, positions) = Self.channelBroadcast(inputs[0].shape, inputs[1].shape)
                ?? Self.channelBroadcast(inputs[1].shape, inputs[0].shape)
        {
            // The map [n, …, c] gets g · weights; the weights [n, 1, …, 1, c] get Σ g · map over positions.
            let bigFirst = inputs[0].shape == out
            let (a, b) = bigFirst ? (inputs[0], inputs[1]) : (inputs[1], inputs[0])
            var ga = [Float](repeating: 0, count: a.count)
            var gb = [Float](repeating: 0, count: b.count)
            outputGradient.scalars.withUnsafeBufferPointer { gs in
                a.scalars.withUnsafeBufferPointer { xs in
                    b.scalars.withUnsafeBufferPointer { ws in
                        ga.withUnsafeMutableBufferPointer { gas in
                            gb.withUnsafeMutableBufferPointer { gbs in
                                for row in 0..<(a.shape[0] * positions) {
                                    let (g, x, da) = (gs.baseAddress! + row * c, xs.baseAddress! + row * c, gas.baseAddress! + row * c)
                                    let (w, dw) = (ws.baseAddress! + row / positions * c, gbs.baseAddress! + row / positions * c)
                                    for k in 0..<c {
                                        da[k] = g[k] * w[k]
                                        dw[k] += g[k] * x[k]
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let da = Tensor(shape: a.shape, scalars: ga)
            let db = Tensor(shape: b.shape, scalars: gb)
            return bigFirst ? [da, db] : [db, da]
        }
        let count = out.reduce(1, *)
        let indices = inputs.map { broadcastSourceIndex(of: $0.shape, in: out) }
        return inputs.indices.map { j in
            var g = [Float](repeating: 0, count: inputs[j].count)
            for p in 0..<count {
                var others = outputGradient.scalars[p]
                for k in inputs.indices where k != j { others *= inputs[k].scalars[indices[k][p]] }
                g[indices[j][p]] += others
            }
            return Tensor(shape: inputs[j].shape, scalars: g)
        }
    }
}
