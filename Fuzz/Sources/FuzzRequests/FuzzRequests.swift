import Foundation
import Visualization

/// Arbitrary JSON decoded into every typed request (what a job row stores and any
/// process runs), then encoded to the canonical JSON its content address hashes, which
/// must decode again to an equal request.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    roundTrip(HeatmapRequest.self, data)
    roundTrip(ActivationsRequest.self, data)
    roundTrip(OverviewRequest.self, data)
    roundTrip(PredictRequest.self, data)
    if let filter = roundTrip(FilterRequest.self, data) {
        _ = try? filter.check(maxSteps: 512, maxCount: 256)
    }
    return 0
}

@discardableResult
func roundTrip<R: RenderRequest>(_ type: R.Type, _ data: Data) -> R? {
    guard let request = try? JSONDecoder().decode(R.self, from: data) else { return nil }
    let canonical = request.canonicalJSON
    guard let again = try? JSONDecoder().decode(R.self, from: canonical) else {
        // NaN and infinities cannot be written as JSON: canonicalJSON is then empty.
        return request
    }
    precondition(canonical == again.canonicalJSON, "\(R.self): canonical JSON is not stable")
    _ = request.contentAddress(model: "fuzz")
    return request
}
