import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

// `convlens serve` as a process: start-up on the bundled model, a clear exit for a bad
// model, graceful shutdown on SIGTERM with a job running.

private func get(_ url: String) async throws -> (Int, Data, [AnyHashable: Any]) {
    let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
    let http = response as! HTTPURLResponse
    return (http.statusCode, data, http.allHeaderFields)
}

@Suite(.serialized) struct ServeProcessTests {
    @Test func servesTheBundledModelAndShutsDownGracefullyOnSIGTERM() async throws {
        let cache = scratchURL("serve").path
        let server = try ServerProcess(
            ["--port", "0", "--cache-dir", cache],
            environment: ["CONVLENS_JOBS_SHUTDOWN_GRACE_SECONDS": "1"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let port = try await server.waitForPort()
        #expect(server.output.contains("EfficientNet-Lite0"), "the log names the bundled model")
        let (status, body, _) = try await get("http://127.0.0.1:\(port)/healthz")
        #expect(status == 200)
        #expect(String(decoding: body, as: UTF8.self).contains("ok"))
        // A job that will still be running when SIGTERM arrives.
        let (accepted, _, headers) = try await get("http://127.0.0.1:\(port)/filters/stem_activation/0?steps=1000&wait=0")
        #expect(accepted == 202)
        let location = headers["Location"] as? String ?? ""
        #expect(location.hasPrefix("/jobs/"))
        // One log line per request: method, path, status, duration, request id.
        try await Task.sleep(for: .milliseconds(300))
        #expect(server.output.contains("GET /healthz 200"))
        #expect(server.output.contains("hb.request.id="))

        kill(server.process.processIdentifier, SIGTERM)
        let code = try await server.waitForExit(timeout: 60)
        #expect(code == 0, "exit status after SIGTERM: \(String(describing: code))\n\(server.output.suffix(2000))")
        #expect(server.output.contains("shutting down: 1 running"))
        #expect(server.output.contains("stopped; results are on disk"))
    }

    /// Load that used to keep the process alive for 90 s after SIGTERM (a 20 s grace): two
    /// Score-CAMs of 1,281 passes in flight and a filter job. Now the interactive work stops
    /// at the end of the grace, the job goes back, and the process is gone within grace + 5 s;
    /// a second signal ends it at once.
    @Test(.timeLimit(.minutes(5)), arguments: [false, true])
    func underLoadSIGTERMEndsTheProcessWithinTheGraceAndASecondSignalAtOnce(secondSignal: Bool) async throws {
        let grace = secondSignal ? 60.0 : 2.0
        let server = try ServerProcess(
            ["--port", "0", "--cache-dir", scratchURL("sigterm-load").path],
            environment: ["CONVLENS_JOBS_SHUTDOWN_GRACE_SECONDS": "\(Int(grace))", "CONVLENS_COMPUTE_THREADS": "1"])
        defer { if server.process.isRunning { server.process.terminate() } }
        let port = try await server.waitForPort()
        let (accepted, _, _) = try await get("http://127.0.0.1:\(port)/filters/block2a_expand_activation/1?steps=1000&wait=0")
        #expect(accepted == 202)
        let image = try Data(contentsOf: root.appendingPathComponent("public/samples/chelsea.png"))
        let load = (0..<2).map { _ in
            Task {
                var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/heatmap?method=scorecam")!)
                request.httpMethod = "POST"
                request.setValue("image/png", forHTTPHeaderField: "Content-Type")
                request.httpBody = image
                request.timeoutInterval = 600
                _ = try? await URLSession.shared.data(for: request)
            }
        }
        defer { for task in load { task.cancel() } }
        var busy = false
        for _ in 0..<600 where !busy {
            let (_, body, _) = try await get("http://127.0.0.1:\(port)/readyz")
            let ready = try JSONSerialization.jsonObject(with: body) as? [String: Any] ?? [:]
            busy = (ready["running_computations"] as? Int ?? 0) + (ready["pending_computations"] as? Int ?? 0) >= 2
            if !busy { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(busy, "the Score-CAMs are in flight")

        let signalled = ContinuousClock.now
        kill(server.process.processIdentifier, SIGTERM)
        if secondSignal {
            try await Task.sleep(for: .seconds(1))
            #expect(server.process.isRunning, "the first signal waits for the grace")
            kill(server.process.processIdentifier, SIGTERM)
        }
        let limit = secondSignal ? 1 + 5 : grace + 5
        let code = try await server.waitForExit(timeout: 120)
        let took = (server.endedAt ?? ContinuousClock.now) - signalled
        print("under load: exited \(took) after SIGTERM\(secondSignal ? " and a second one a second later" : "") (grace \(grace) s)")
        #expect(code != nil)
        #expect(took < .seconds(limit), "exited \(took) after SIGTERM (limit \(limit) s)\n\(server.output.suffix(2000))")
        if secondSignal {
            #expect(code == 1 && server.output.contains("second signal: exiting now"), "\(server.output.suffix(2000))")
        } else {
            #expect(code == 0, "\(server.output.suffix(2000))")
        }
    }

    @Test func aMissingOrBrokenModelStopsStartUpWithAClearMessage() async throws {
        let missing = try ServerProcess(["--port", "0", "--model", "/nonexistent/model.h5"])
        #expect(try await missing.waitForExit(timeout: 30) == 2)
        #expect(missing.output.contains("model file not found: /nonexistent/model.h5"))

        let broken = scratchURL("broken", suffix: ".h5")
        try Data("not an HDF5 file".utf8).write(to: broken)
        let bad = try ServerProcess(["--port", "0", "--model", broken.path])
        #expect(try await bad.waitForExit(timeout: 30) == 2)
        #expect(bad.output.contains("cannot load the model \(broken.path)"))

        let badConfig = try ServerProcess(["--port", "0"], environment: ["CONVLENS_COMPUTE_THREADS": "0"])
        #expect(try await badConfig.waitForExit(timeout: 30) == 2)
        #expect(badConfig.output.contains("compute.threads"))
    }

    /// A port another process listens on: the server says so and exits non-zero, so a
    /// supervisor restarting on failure sees one (it exited 0 after logging "stopped").
    @Test func aTakenPortEndsStartUpWithAFailure() async throws {
        let first = try ServerProcess(["--port", "0", "--cache-dir", scratchURL("port-a").path])
        defer { if first.process.isRunning { first.process.terminate() } }
        let port = try await first.waitForPort()
        let second = try ServerProcess(["--port", "\(port)", "--cache-dir", scratchURL("port-b").path])
        defer { if second.process.isRunning { second.process.terminate() } }
        let code = try await second.waitForExit(timeout: 120)
        #expect(code != nil && code != 0, "exit status \(String(describing: code)):\n\(second.output.suffix(2000))")
        #expect(second.output.lowercased().contains("address already in use"), "\(second.output.suffix(2000))")
        #expect(!second.output.contains("stopped; results are on disk"))
    }
}

@Suite struct GalleryCommandTests {
    @Test func galleryRendersGridsIntoTheFolderAndTheServersCache() throws {
        let tmp = scratchURL("gallery")
        let out = tmp.appendingPathComponent("out").path
        func run() throws -> (Int32, String) {
            let p = Process()
            p.executableURL = executable
            p.arguments = ["gallery", "--out", out, "--layers", "stem_conv", "--count", "2"]
            p.currentDirectoryURL = root
            p.environment = ProcessInfo.processInfo.environment.merging(["CONVLENS_CACHE_DIR": tmp.appendingPathComponent("cache").path]) {
                $1
            }
            let err = Pipe()
            p.standardError = err
            try p.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return (p.terminationStatus, text)
        }
        let (status, log) = try run()
        #expect(status == 0, "\(log)")
        #expect(log.contains("stem_conv → stem_activation: rendered"), "the grid is drawn at the activated output")
        let png = try Data(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("stem_conv.png"))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        let cached = FileManager.default.enumerator(atPath: tmp.appendingPathComponent("cache").path)?.allObjects as? [String] ?? []
        #expect(cached.contains { $0.hasSuffix(".png") }, "the grid is in the server's cache")
        let (again, log2) = try run()
        #expect(again == 0)
        #expect(log2.contains("stem_conv → stem_activation: from the cache"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: out).appendingPathComponent("stem_conv.png")) == png)
    }
}

/// The gallery in a real browser: Debian's chromium driven by Selenium
/// (`tools/browser/gallery_check.py`) against `convlens serve` — the page loads, a sample photo
/// gives predictions, a heatmap and an activation grid, "Compare methods" fills its grid of
/// overlays and scores (a job), a filter grid fills in, and the console stays free of errors. scripts/setup installs chromium, chromium-driver and
/// python3-selenium; without them this test fails, it is not skipped.
@Suite struct GalleryBrowserTests {
    @Test(.timeLimit(.minutes(10))) func theGalleryWorksInARealBrowser() async throws {
        let tmp = scratchURL("browser")
        let server = try ServerProcess(["--port", "0", "--cache-dir", tmp.appendingPathComponent("cache").path])
        defer { if server.process.isRunning { server.process.terminate() } }
        let port = try await server.waitForPort()
        let (status, output) = try browserCheck("gallery_check.py", port: port, screenshots: tmp.appendingPathComponent("screenshots"))
        #expect(status == 0, "gallery_check.py failed:\n\(output)\nserver log tail:\n\(server.output.suffix(3000))")
        #expect(output.contains("Egyptian cat"))
        #expect(output.contains("ok  compare:"), "the compare stage ran")
        let shots = (try? FileManager.default.contentsOfDirectory(atPath: tmp.appendingPathComponent("screenshots").path)) ?? []
        #expect(shots.contains { $0.hasSuffix(".png") }, "screenshots were saved")
        kill(server.process.processIdentifier, SIGTERM)
        #expect(try await server.waitForExit(timeout: 60) == 0)
    }

    /// A segmentation model's gallery (`tools/browser/segmentation_check.py`): the predicted
    /// mask drawn over the photo instead of a top-5 list, its classes by share of the cells
    /// as POST /api/predict gives them, and a click on a class explains that class.
    @Test(.timeLimit(.minutes(5))) func aSegmentationsMaskIsDrawnOverThePhoto() async throws {
        let tmp = scratchURL("browser-segmentation")
        let model = root.appendingPathComponent("Tests/Fixtures/visualization/targets/tiny_segmenter.keras").path
        let server = try ServerProcess(["--port", "0", "--model", model, "--cache-dir", tmp.appendingPathComponent("cache").path])
        defer { if server.process.isRunning { server.process.terminate() } }
        let port = try await server.waitForPort()
        let (status, output) = try browserCheck(
            "segmentation_check.py", port: port, screenshots: tmp.appendingPathComponent("screenshots"))
        #expect(status == 0, "segmentation_check.py failed:\n\(output)\nserver log tail:\n\(server.output.suffix(3000))")
        #expect(output.contains("ok  mask drawn over the image") && output.contains("chosen:"), "\(output)")
    }
}

/// Runs a script of tools/browser/ against the server on `port`: its exit status and output.
private func browserCheck(_ script: String, port: Int, screenshots: URL) throws -> (Int32, String) {
    let check = Process()
    check.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    check.arguments = ["tools/browser/\(script)", "--url", "http://127.0.0.1:\(port)", "--screenshots", screenshots.path]
    check.currentDirectoryURL = root
    let pipe = Pipe()
    (check.standardOutput, check.standardError) = (pipe, pipe)
    try check.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    check.waitUntilExit()
    return (check.terminationStatus, output)
}
