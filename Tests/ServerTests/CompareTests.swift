import Foundation
import HTTPTypes
import Server
import Testing

/// `POST /heatmap/compare` through a real server: a job with progress whose result holds,
/// per method, exactly the scores `POST /heatmap?metrics=…&format=json` gives; bad input is
/// refused before anything is queued; a running comparison can be cancelled.
@Suite(.timeLimit(.minutes(10))) struct CompareTests {
    func finished(_ client: TestHTTPClient, _ location: String, timeout: Double = 300) async throws -> [String: Any] {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            let s = try await client.get(location).json()
            if let state = s["state"] as? String, ["done", "failed", "cancelled"].contains(state) { return s }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CancellationError()
    }

    @Test func aComparisonIsAJobWhoseScoresEqualTheHeatmapRoutes() async throws {
        try await withServer { _, client in
            let image = try sample("chelsea.png")
            let query = "methods=gradcam,saliency,layercam&metrics=deletion,insertion,drop"
            let r = try await client.post("/heatmap/compare?" + query, image: image)
            #expect(r.status == .accepted, "\(r.text)")
            let location = try #require(r.headers[.location])
            let job = try r.json()
            #expect(job["kind"] as? String == "compare")
            #expect(job["steps"] as? Int == 3 * 4)
            let result = try #require(job["result"] as? String)
            #expect(result.hasPrefix("/heatmap/compare/") && result.count == "/heatmap/compare/".count + 64)

            let status = try await finished(client, location)
            #expect(status["state"] as? String == "done", "\(status)")
            #expect(status["step"] as? Int == 12)
            let answer = try await client.get(result)
            #expect(answer.status == .ok && answer.headers[.contentType]?.hasPrefix("application/json") == true)
            let document = try answer.json()
            let methods = try #require(document["methods"] as? [[String: Any]])
            #expect(methods.compactMap { $0["method"] as? String } == ["gradcam", "layercam", "saliency"])
            for m in methods {
                let name = m["method"] as! String
                let heatmap = try await client.post(
                    "/heatmap?method=\(name)&metrics=deletion,insertion,drop&format=json", image: image
                ).json()
                let expected = try #require(heatmap["metrics"] as? [String: Any])
                let scores = try #require(m["scores"] as? [String: Any])
                for key in ["deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence"] {
                    let a = try #require(scores[key] as? Double, "\(name) \(key)")
                    let b = try #require(expected[key] as? Double, "\(name) \(key)")
                    #expect(abs(a - b) <= 1e-6, "\(name) \(key): compare \(a), heatmap \(b)")
                }
                #expect(heatmap["class"] as? Int == document["class"] as? Int)
                let png = try #require(Data(base64Encoded: m["overlay_png"] as? String ?? ""))
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(name): the overlay is a PNG")
            }
            // The best per score is the extreme of the column.
            let best = try #require(document["best"] as? [String: [String]])
            let insertion = methods.map { (($0["scores"] as! [String: Any])["insertion_auc"] as! Double, $0["method"] as! String) }
            #expect(best["insertion_auc"] == [insertion.max { $0.0 < $1.0 }!.1])

            // Asked again (the same request in another spelling, a multipart upload): the stored document at once.
            let again = try await client.postForm(
                "/heatmap/compare?metrics=drop,insertion,deletion&methods=saliency,layercam,gradcam", image: image)
            #expect(again.status == .ok, "\(again.text.prefix(300))")
            #expect(again.header("X-Cache") == "hit")
            #expect(again.headers[.contentLocation] == result)
            #expect(again.data == answer.data)
            let revalidated = try await client.get(result, headers: [.ifNoneMatch: answer.headers[.eTag] ?? ""])
            #expect(revalidated.status == .notModified)
        }
    }

    @Test func identicalComparisonsInFlightAreOneJob() async throws {
        try await withServer { _, client in
            let image = try sample("coffee.png")
            let uri = "/heatmap/compare?methods=gradcam,gradcam%2B%2B,xgradcam&metrics=deletion"
            let first = try await client.post(uri, image: image)
            let second = try await client.post(uri, image: image)
            #expect(first.status == .accepted, "\(first.text)")
            if second.status == .accepted {
                #expect(try first.json()["job"] as? String == second.json()["job"] as? String, "one job for one request and image")
            } else {
                #expect(second.status == .ok, "finished already: the stored result")
            }
            // Another image is another job.
            let other = try await client.post(uri, image: try sample("astronaut.png"))
            #expect(other.status == .accepted)
            #expect(try other.json()["job"] as? String != first.json()["job"] as? String)
            for r in [first, other] { _ = try await finished(client, r.headers[.location]!) }
        }
    }

    @Test func badComparisonsAreRefusedBeforeAnythingIsQueued() async throws {
        try await withServer(testSettings { $0.maxComparePasses = 200 }) { service, client in
            let image = try sample("chelsea.png")
            let cases: [(String, HTTPResponse.Status, String)] = [
                ("methods=gradcam,nope", .badRequest, "bad_request"),
                ("metrics=deletion,bleu", .badRequest, "bad_request"),
                ("methods=gradcam&layer=nope", .notFound, "unknown_layer"),
                ("methods=gradcam&class=1000", .badRequest, "class_out_of_range"),
                ("methods=gradcam&alpha=3", .badRequest, "bad_request"),
                ("methods=gradcam&overlay_size=99999", .badRequest, "bad_request"),
                ("methods=gradcam&overlay_size=-1", .badRequest, "bad_request"),
                ("methods=gradcam&colormap=rainbowish", .badRequest, "bad_request"),
                // gradcam 105 + saliency 105 passes > 200.
                ("methods=gradcam,saliency", .unprocessableContent, "too_costly"),
                // 1281 + 104 passes: more than one comparison may cost.
                ("methods=scorecam", .unprocessableContent, "too_costly"),
            ]
            for (query, status, code) in cases {
                let r = try await client.post("/heatmap/compare?" + query, image: image)
                #expect(r.status == status, "\(query): \(r.status) \(r.text)")
                #expect(try r.error().code == code, "\(query)")
            }
            let costly = try await client.post("/heatmap/compare?methods=gradcam,saliency", image: image).error().detail
            #expect(costly.contains("210") && costly.contains("gradcam 105") && costly.contains("server.max_compare_passes"), "\(costly)")
            // The upload itself: not an image, empty.
            let text = try await client.post(
                "/heatmap/compare?methods=gradcam", image: Data("hello".utf8), contentType: "application/octet-stream")
            #expect(text.status == .unsupportedMediaType, "\(text.text)")
            let empty = try await client.post("/heatmap/compare?methods=gradcam", image: Data())
            #expect(empty.status.code >= 400 && empty.status.code < 500, "\(empty.status)")
            let counts = try await service.jobs.counts()
            #expect(counts.queued == 0 && counts.running == 0, "nothing was queued")
            // Results by address: malformed, unknown.
            #expect(try await client.get("/heatmap/compare/xyz").status == .badRequest)
            let unknown = try await client.get("/heatmap/compare/" + String(repeating: "ab", count: 32))
            #expect(unknown.status == .notFound)
            #expect(try unknown.error().code == "unknown_result")
        }
    }

    @Test func aRunningComparisonCanBeCancelled() async throws {
        try await withServer { _, client in
            // The default method set: long enough to still be running when the cancel arrives.
            let r = try await client.post(
                "/heatmap/compare?metrics=deletion,insertion,drop", image: try sample("rocket.jpg"), contentType: "image/jpeg")
            #expect(r.status == .accepted, "\(r.text)")
            let location = try #require(r.headers[.location])
            let end = Date().addingTimeInterval(120)
            while Date() < end, try await client.get(location).json()["state"] as? String == "queued" {
                try await Task.sleep(for: .milliseconds(50))
            }
            let cancelled = try await client.execute(uri: location, method: .delete)
            #expect(cancelled.status == .ok)
            let status = try await finished(client, location)
            #expect(status["state"] as? String == "cancelled", "\(status)")
            #expect((status["step"] as? Int ?? 0) < (status["steps"] as? Int ?? 0), "stopped before the last step: \(status)")
            let result = try #require(status["result"] as? String)
            #expect(try await client.get(result).status == .notFound, "a cancelled comparison stores nothing")
        }
    }

    @Test func aFullQueueRefusesComparisons() async throws {
        try await withServer(testSettings { $0.maxQueuedJobs = 1 }) { _, client in
            let uri = "/heatmap/compare?methods=gradcam,hirescam&metrics=deletion,insertion"
            var statuses: [HTTPResponse.Status] = []
            for name in ["chelsea.png", "coffee.png", "astronaut.png"] {
                let r = try await client.post(uri, image: try sample(name))
                statuses.append(r.status)
                if r.status == .tooManyRequests { #expect(try r.error().code == "queue_full" && r.headers[.retryAfter] != nil) }
            }
            // One runs, one waits, the third finds the queue full.
            #expect(statuses == [.accepted, .accepted, .tooManyRequests], "\(statuses)")
        }
    }
}
