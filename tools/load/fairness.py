#!/usr/bin/env python3
"""Re-measures the fair-compute probe of issue #28 against a release `convlens serve`.

Each client connects from its own loopback address (127.0.0.x), so the server counts it
as its own client. Scenarios (default config, the bundled model):

  predict   one client's /api/predict p50 idle, then while another client keeps one
            Score-CAM (1,281 passes) in flight at all times
  hangup    five Score-CAMs whose clients hang up at once: how long until the server
            has no computation running, and a predict sent right after
  lucid     a lucid filter job's steps per second idle, then under ~35 predictions/s
            from three other clients
  sigterm   SIGTERM with two Score-CAMs and a job in flight: seconds until exit, grace 20 s
  preempt   a single book filter alone and while a 16-filter lucid grid runs; the grid's
            picture against an uninterrupted run's

Usage: tools/load/fairness.py BIN [scenario ...]     (BIN: .build/release/convlens)
Only the standard library; loopback only.
"""

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

IMAGE = open("public/samples/chelsea.png", "rb").read()


class Server:
    def __init__(self, binary, env=None):
        self.cache = tempfile.mkdtemp(prefix="convlens-fairness-")
        self.proc = subprocess.Popen(
            [binary, "serve", "--port", "0", "--cache-dir", self.cache],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.log = []
        self.port = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                text = line.decode(errors="replace")
                self.log.append(text)
                if "serving on http://127.0.0.1:" in text and self.port is None:
                    self.port = int(text.split("127.0.0.1:")[1].split("/")[0])
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(120):
            raise SystemExit("the server did not start:\n" + "".join(self.log[-20:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(120)


def request(port, method, path, body=None, source="127.0.0.1", timeout=600):
    """One request on a fresh connection from `source`; (status, body bytes, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    started = time.monotonic()
    headers = {"Content-Type": "image/png"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data, time.monotonic() - started


def ready(port):
    return json.loads(request(port, "GET", "/readyz")[1])


def p50_of_predictions(port, n=20, source="127.0.0.1"):
    times = [request(port, "POST", "/api/predict", IMAGE, source)[2] for _ in range(n)]
    return statistics.median(times) * 1000


def keep_in_flight(port, path, source, stop):
    while not stop.is_set():
        try:
            request(port, "POST", path, IMAGE, source)
        except OSError:
            time.sleep(0.1)


def scenario_predict(binary):
    server = Server(binary)
    try:
        for _ in range(3):
            request(server.port, "POST", "/api/predict", IMAGE)
        idle = p50_of_predictions(server.port)
        stop = threading.Event()
        worker = threading.Thread(
            target=keep_in_flight, args=(server.port, "/heatmap?method=scorecam", "127.0.0.2", stop), daemon=True)
        worker.start()
        while ready(server.port)["running_computations"] == 0:
            time.sleep(0.05)
        loaded = p50_of_predictions(server.port)
        stop.set()
        print(f"predict p50: idle {idle:.0f} ms, while another client's Score-CAM runs {loaded:.0f} ms "
              f"({loaded / idle:.2f}x)")
    finally:
        server.stop()


def scenario_hangup(binary):
    server = Server(binary)
    try:
        socks = []
        for i in range(5):
            s = socket.create_connection(("127.0.0.1", server.port), source_address=(f"127.0.0.{10 + i}", 0))
            s.sendall(b"POST /heatmap?method=scorecam HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      + f"Content-Length: {len(IMAGE)}\r\n\r\n".encode() + IMAGE)
            socks.append(s)
        while ready(server.port)["running_computations"] == 0:
            time.sleep(0.05)
        time.sleep(1)
        hung = time.monotonic()
        for s in socks:
            s.close()
        while True:
            r = ready(server.port)
            if r["running_computations"] == 0 and r["pending_computations"] == 0:
                break
            time.sleep(0.01)
        idle_after = time.monotonic() - hung
        _, _, took = request(server.port, "POST", "/api/predict", IMAGE)
        print(f"five Score-CAMs hung up: no computation left after {idle_after * 1000:.0f} ms; "
              f"a predict sent then took {took * 1000:.0f} ms")
    finally:
        server.stop()


def job_steps_per_second(port, seconds):
    path = f"/filters/block2a_expand_activation/{int(time.time()) % 100}?method=lucid&steps=1000&wait=0"
    status, body, _ = request(port, "GET", path)
    location = json.loads(body)["id"]

    def step():
        return json.loads(request(port, "GET", f"/jobs/{location}")[1])["step"]

    while step() == 0:
        time.sleep(0.05)
    before, started = step(), time.monotonic()
    time.sleep(seconds)
    rate = (step() - before) / (time.monotonic() - started)
    request(port, "DELETE", f"/jobs/{location}")
    return rate


def scenario_lucid(binary):
    server = Server(binary)
    try:
        idle = job_steps_per_second(server.port, 10)
        stop = threading.Event()
        answered = [0]
        lock = threading.Lock()

        def predictions(source):
            # ~12 per second each: three clients make ~35/s.
            while not stop.is_set():
                started = time.monotonic()
                if request(server.port, "POST", "/api/predict", IMAGE, source)[0] == 200:
                    with lock:
                        answered[0] += 1
                time.sleep(max(0, 1 / 12 - (time.monotonic() - started)))

        threads = [threading.Thread(target=predictions, args=(f"127.0.0.{2 + i}",), daemon=True) for i in range(3)]
        started = time.monotonic()
        for t in threads:
            t.start()
        loaded = job_steps_per_second(server.port, 20)
        stop.set()
        rate = answered[0] / (time.monotonic() - started)
        print(f"lucid job: {idle:.1f} steps/s idle, {loaded:.1f} steps/s under {rate:.0f} predictions/s "
              f"({loaded / idle:.2f} of idle)")
    finally:
        server.stop()


def scenario_sigterm(binary):
    server = Server(binary, {"CONVLENS_JOBS_SHUTDOWN_GRACE_SECONDS": "20"})
    request(server.port, "GET", "/filters/block2a_expand_activation/1?method=lucid&steps=1000&wait=0")
    for i in range(2):
        threading.Thread(
            target=lambda s: request(server.port, "POST", "/heatmap?method=scorecam", IMAGE, s),
            args=(f"127.0.0.{20 + i}",), daemon=True).start()
    while ready(server.port)["running_computations"] < 1:
        time.sleep(0.05)
    time.sleep(1)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(300)
    print(f"SIGTERM under load (grace 20 s): exited after {time.monotonic() - signalled:.1f} s, "
          f"status {server.proc.returncode}")


def scenario_preempt(binary):
    """A single book filter while a 16-filter lucid grid runs; the grid's PNG against an uninterrupted run's."""
    grid = "/filters/block2a_expand_activation?count=16&method=lucid&steps=200"
    single = "/filters/block3a_expand_activation/5?method=book&steps=40&wait=300"
    server = Server(binary)
    try:
        request(server.port, "GET", single.replace("/5?", "/4?"))  # warm-up: plans, caches
        _, _, alone = request(server.port, "GET", single)
        status, body, _ = request(server.port, "GET", grid + "&wait=0")
        job = json.loads(body)["id"]

        def status_of():
            return json.loads(request(server.port, "GET", f"/jobs/{job}")[1])

        while status_of()["step"] < 5:
            time.sleep(0.05)
        s0, t0 = status_of()["step"], time.monotonic()
        time.sleep(3)
        step_seconds = (time.monotonic() - t0) / max(1, status_of()["step"] - s0)
        # Another filter, so the answer is computed, not the cache's.
        _, _, during = request(server.port, "GET", single.replace("/5?", "/6?"))
        while status_of()["state"] != "done":
            time.sleep(0.2)
        interrupted = request(server.port, "GET", grid)[1]
    finally:
        server.stop()
    server = Server(binary)
    try:
        uninterrupted = request(server.port, "GET", grid + "&wait=300")[1]
    finally:
        server.stop()
    print(f"single book filter: {alone * 1000:.0f} ms alone, {during * 1000:.0f} ms while the grid ran "
          f"(grid step {step_seconds * 1000:.0f} ms); grid PNG "
          f"{'byte-identical to' if interrupted == uninterrupted else 'DIFFERENT from'} an uninterrupted run's "
          f"({len(interrupted)} bytes)")


SCENARIOS = {"predict": scenario_predict, "hangup": scenario_hangup, "lucid": scenario_lucid,
             "sigterm": scenario_sigterm, "preempt": scenario_preempt}

if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{os.cpu_count()} cores, {cpu}")
    for name in sys.argv[2:] or list(SCENARIOS):
        SCENARIOS[name](sys.argv[1])
