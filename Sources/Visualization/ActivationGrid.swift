import Engine

/// Statistics of one channel of a feature map, so blank channels show.
public struct ChannelStatistics: Sendable, Codable, Equatable {
    public var channel: Int
    public var mean: Float
    public var max: Float
    /// Fraction of exactly-zero cells (dead ReLU units show as 1.0).
    public var zeroFraction: Float
}

/// The book's display normalisation of each channel of one image's feature map:
/// subtract the channel's mean, divide by its (population) std, × 64, + 128,
/// clip to [0, 255], truncate to 8 bits. A constant channel has no std; it is
/// drawn as mid-grey 128 instead of dividing by zero.
///
/// - Parameter activation: [1, h, w, c] (one image).
/// - Returns: c planes of h × w bytes, channel-major.
public func bookNormalizedChannels(_ activation: Tensor) throws -> [[UInt8]] {
    guard activation.rank == 4, activation.batch == 1 else {
        throw VisualizationError.invalid("expected one image's feature map [1, h, w, c], got \(activation.shape)")
    }
    let (hw, c) = (activation.shape[1] * activation.shape[2], activation.shape[3])
    let a = activation.scalars
    var planes = [[UInt8]](repeating: [], count: c)
    for ch in 0..<c {
        // Double accumulation: the mean and std of large maps in Float drift by more than one grey level.
        var sum = 0.0
        var lo = Float.infinity
        var hi = -Float.infinity
        for p in 0..<hw {
            let v = a[p * c + ch]
            sum += Double(v)
            lo = min(lo, v)
            hi = max(hi, v)
        }
        let mean = sum / Double(hw)
        var sq = 0.0
        for p in 0..<hw {
            let d = Double(a[p * c + ch]) - mean
            sq += d * d
        }
        let std = (sq / Double(hw)).squareRoot()
        var plane = [UInt8](repeating: 128, count: hw)
        if hi > lo && std > 0 {
            for p in 0..<hw {
                let v = (Double(a[p * c + ch]) - mean) / std * 64 + 128
                plane[p] = UInt8(min(max(v, 0), 255))
            }
        }
        planes[ch] = plane
    }
    return planes
}

/// Per-channel statistics of one image's feature map [1, h, w, c].
public func channelStatistics(_ activation: Tensor) throws -> [ChannelStatistics] {
    guard activation.rank == 4, activation.batch == 1 else {
        throw VisualizationError.invalid("expected one image's feature map [1, h, w, c], got \(activation.shape)")
    }
    let (hw, c) = (activation.shape[1] * activation.shape[2], activation.shape[3])
    return (0..<c).map { ch in
        var sum = 0.0
        var hi = -Float.infinity
        var zeros = 0
        for p in 0..<hw {
            let v = activation.scalars[p * c + ch]
            sum += Double(v)
            hi = max(hi, v)
            if v == 0 { zeros += 1 }
        }
        return ChannelStatistics(
            channel: ch, mean: Float(sum / Double(hw)), max: hi,
            zeroFraction: Float(zeros) / Float(hw))
    }
}
