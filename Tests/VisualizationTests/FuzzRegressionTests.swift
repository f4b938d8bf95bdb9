import Foundation
import TestSupport
import Testing
import Visualization

/// Replays Tests/Fixtures/fuzz/requests/ (see scripts/fuzz) as the `requests` fuzz target
/// does: JSON decoded into every typed request, which then has a stable canonical JSON;
/// anything else is a `DecodingError` (or a `RequestError` from a filter's check).
/// A crash fails the run.
@Suite struct RequestFuzzRegressionTests {
    static let dir = FuzzInputs.directory("requests")
    static var inputs: [String] { FuzzInputs.names("requests") }

    @Test func thereAreInputs() { #expect(Self.inputs.count >= 3) }

    @Test(arguments: inputs)
    func replay(_ name: String) throws {
        let data = try Data(contentsOf: Self.dir.appendingPathComponent(name))
        var decoded = 0
        let heatmap = roundTrip(HeatmapRequest.self, data, name)
        // The hand-written heatmap seeds (scripts/fuzz-seeds) are valid requests: they must
        // keep decoding as the request type grows, or they stop reaching its code.
        if name.hasPrefix("heatmap_") { #expect(heatmap == 1, "\(name) no longer decodes as a HeatmapRequest") }
        decoded += heatmap
        decoded += roundTrip(ActivationsRequest.self, data, name)
        decoded += roundTrip(OverviewRequest.self, data, name)
        decoded += roundTrip(PredictRequest.self, data, name)
        decoded += roundTrip(FilterRequest.self, data, name)
        do {
            try JSONDecoder().decode(FilterRequest.self, from: data).check(maxSteps: 512, maxCount: 256)
        } catch {
            #expect(error is DecodingError || error is RequestError, "\(name): \(error)")
        }
        _ = decoded
    }

    func roundTrip<R: RenderRequest>(_ type: R.Type, _ data: Data, _ name: String) -> Int {
        do {
            let request = try JSONDecoder().decode(R.self, from: data)
            let canonical = request.canonicalJSON
            if let again = try? JSONDecoder().decode(R.self, from: canonical) {
                #expect(again.canonicalJSON == canonical, "\(name): \(R.self)")
            }
            return 1
        } catch {
            #expect(error is DecodingError, "\(name): \(R.self): \(error)")
            return 0
        }
    }
}
