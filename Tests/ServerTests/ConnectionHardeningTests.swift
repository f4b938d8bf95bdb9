import Foundation
import HTTPTypes
import Logging
import Server
import ServiceLifecycle
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Clients that hold connections: a body trickled forever, more connections than the
/// server allows, and a shutdown that must keep answering readiness while it drains.
@Suite(.timeLimit(.minutes(5))) struct ConnectionHardeningTests {
    @Test func aTrickledBodyIsCutOffAtTheBodyDeadline() async throws {
        try await withServer(testSettings { $0.bodyTimeoutSeconds = 1 }) { _, client in
            let connection = try RawConnection(port: client.port)
            connection.send("POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n")
            let start = Date()
            // A byte every 0.4 s keeps the connection from ever being idle; only the
            // deadline on the whole body can end it. The 1000 bytes would take 400 s; the
            // client gives up after 300 of them (120 s, a margin for a heavily loaded machine).
            let (answer, closed, sent) = await offPool { () -> (Data, Bool, Int) in
                var received = Data()
                for sent in 1...300 {
                    guard connection.send("x") else { return (received, true, sent) }
                    switch connection.receive(timeout: 0.4) {
                    case .data(let d): received.append(d)
                    case .closed: return (received, true, sent)
                    case .timedOut: continue
                    }
                    let (rest, closed) = connection.readToEnd(timeout: 60)
                    return (received + rest, closed, sent)
                }
                return (received, false, 300)
            }
            let elapsed = Date().timeIntervalSince(start)
            #expect(sent < 300, "the server let the trickle go on for \(elapsed) s")
            #expect(elapsed > 0.8, "cut off after \(elapsed) s, before the deadline")
            let response = RawResponse(answer)
            #expect(response?.status == 408 || (response == nil && closed), "\(String(decoding: answer.prefix(300), as: UTF8.self))")
            #expect(response?.text.contains("server.body_timeout_seconds") ?? true)
            try await client.expectHealthy()
        }
    }

    @Test func connectionsBeyondTheLimitAreRefusedAndTheServerLivesOn() async throws {
        try await withServer(testSettings { $0.maxConnections = 4 }) { _, client in
            // Four connections that never send a request hold every slot.
            let held = try (0..<4).map { _ in try RawConnection(port: client.port) }
            try await Task.sleep(for: .milliseconds(300))
            // Each further connection is answered 503 (or closed) at once, not left waiting.
            let extra = try (0..<12).map { _ in try RawConnection(port: client.port) }
            let outcomes = await offPool { extra.map { $0.readToEnd(timeout: 120) } }
            for (data, closed) in outcomes {
                let response = RawResponse(data)
                #expect(closed, "an extra connection was kept open")
                #expect(response == nil || response?.status == 503, "\(String(decoding: data.prefix(200), as: UTF8.self))")
                if let response { #expect(response.text.contains("server.max_connections")) }
            }
            #expect(outcomes.contains { RawResponse($0.data)?.status == 503 }, "no extra connection got the 503")
            // Freed slots are usable again.
            withExtendedLifetime(held) {}
            for connection in held { connection.shutdownWrite() }
            var healthy = false
            for _ in 0..<300 where !healthy {
                try await Task.sleep(for: .milliseconds(100))
                healthy =
                    (try? await rawExchange(
                        port: client.port, Data("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), timeout: 120))?
                    .status == 200
            }
            #expect(healthy, "the server did not answer /healthz once the held connections closed")
            let metrics = try await client.get("/metrics").text
            let refused = metrics.split(separator: "\n").first { $0.hasPrefix("convlens_connections_refused_total ") }
            #expect(refused.flatMap { Double($0.split(separator: " ").last!) }.map { $0 >= 12 } == true, "\(refused ?? "none")")
        }
    }

    @Test func readinessIs503AndTheListenerStaysOpenDuringTheDrain() async throws {
        // A grace period long enough that, on a 2-core machine busy with the other suites,
        // the probes below all run inside it (at 4 s they sometimes came after it).
        let settings = testSettings {
            $0.shutdownGraceSeconds = 12
            $0.filterMaxSteps = 10_000
        }
        let service = try ConvLensService(settings: settings, session: bundled.session, modelDigest: bundled.digest)
        var logger = Logger(label: "convlens-test")
        logger.logLevel = .warning
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let group = ServiceGroup(
            services: ConvLensServer.services(service: service, logger: logger, onRunning: { portSink.yield($0) }),
            gracefulShutdownSignals: [], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var next = ports.makeAsyncIterator()
            let port = try #require(await next.next())
            let client = TestHTTPClient(base: "http://127.0.0.1:\(port)")
            #expect(try await client.get("/readyz").status == .ok)
            // A job that runs far longer than the grace period, in short steps (an early layer),
            // so it stops soon after the grace period ends.
            let job = try await client.get("/filters/block3a_expand_activation/0?steps=10000&wait=0")
            #expect(job.status == .accepted)
            let location = try #require(job.headers[.location])
            var running = false
            for _ in 0..<1200 where !running {
                running = (try await client.get(location).json()["state"] as? String) == "running"
                if !running { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(running, "the job never started")
            // What SIGTERM does.
            let start = ContinuousClock.now
            await group.triggerGracefulShutdown()
            let get = { (path: String) async throws -> Int in
                try await rawExchange(port: port, Data("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)).status
            }
            // The service group starts the drain asynchronously: readiness turns 503 soon,
            // and the listener must answer all along (a refused connection throws here).
            var readiness = try await get("/readyz")
            for _ in 0..<600 where readiness == 200 {
                try await Task.sleep(for: .milliseconds(50))
                readiness = try await get("/readyz")
            }
            #expect(readiness == 503, "readiness during the drain")
            #expect(try await get("/healthz") == 200, "liveness during the drain")
            try await Task.sleep(for: .seconds(1))
            #expect(try await get("/readyz") == 503, "readiness later in the drain")
            try await tasks.waitForAll()
            let took = ContinuousClock.now - start
            #expect(took >= .seconds(11), "stopped after \(took), before the grace period")
            // The group has ended, so the listener is closed; whether a connection to the port
            // is refused is not asserted, since the suites running alongside may be given the
            // same port by the kernel as soon as it is free.
        }
    }
}
