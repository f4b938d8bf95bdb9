#!/usr/bin/env python3
"""A long mixed load against a running ConvLens, watching the server process for growth.

Clients (threads) loop over a weighted mix of what users and careless clients send:
heatmaps (several methods, colormaps and images), activation grids of random spatial layers,
predictions, bad uploads (random bytes, truncated PNGs, an empty body, a PNG header claiming
65535×65535 pixels, a multipart form without the image), unknown layers and out-of-range
indices, and filter visualisations submitted as jobs (`wait=0`) whose state is then polled.
Every minute it samples the server's RSS and open file descriptors from /proc.

Exits non-zero on any 5xx, any connection error or timeout, or if the server process is gone.
Standard library only.

    tools/load/soak.py --url http://127.0.0.1:8097 --pid PID --minutes 30 [--clients 2] [--json OUT]
"""

import argparse
import http.client
import json
import os
import random
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import zlib
from collections import Counter

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "public", "samples")


def load_images():
    images = {}
    for name in sorted(os.listdir(SAMPLES)):
        if name.lower().endswith((".png", ".jpg", ".jpeg")):
            with open(os.path.join(SAMPLES, name), "rb") as f:
                images[name] = f.read()
    return images


def png_claiming(width, height):
    """A PNG whose IHDR claims width×height pixels, with a tiny IDAT: a decompression bomb's header."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def multipart(fields):
    boundary = "----SoakBoundary" + uuid.uuid4().hex
    parts = []
    for name, (filename, content_type, data) in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        if filename:
            head += f'; filename="{filename}"'
        head += f"\r\nContent-Type: {content_type}\r\n\r\n"
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Soak:
    def __init__(self, url, pid, minutes, clients, seed):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.pid = pid
        self.deadline = time.monotonic() + minutes * 60
        self.clients = clients
        self.random = random.Random(seed)
        self.images = load_images()
        self.lock = threading.Lock()
        self.statuses = Counter()  # (kind, status) -> count
        self.latency = {}  # kind -> [seconds]
        self.failures = []  # (kind, detail)
        self.jobs = []  # job ids to poll
        self.samples = []  # (minute, rss MiB, fds, threads)
        model = self.call("GET", "/api/model")[2]
        summary = json.loads(model)
        self.spatial = [l["name"] for l in summary["layers"] if l["spatial"] and l["name"] != "input"]
        self.convolutions = [
            (l["activated_output"] or l["name"], l["filters"]) for l in summary["layers"] if l["convolution"] and l["filters"]
        ]
        self.methods = [m["name"] for m in summary["cam_method_info"] if m["passes"] <= 64]

    # HTTP

    def call(self, method, path, body=None, content_type=None, timeout=120):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, dict(response.getheaders()), data
        finally:
            conn.close()

    # The mix

    def heatmap(self, rng):
        name, data = rng.choice(list(self.images.items()))
        query = {"method": rng.choice(self.methods), "colormap": rng.choice(["jet", "viridis", "turbo"])}
        if rng.random() < 0.3:
            query["format"] = "json"
        kind = "image/jpeg" if name.endswith(".jpg") else "image/png"
        if rng.random() < 0.5:
            body, kind = multipart({"image": (name, kind, data)})
            data = body
        return "POST", "/heatmap?" + urllib.parse.urlencode(query), data, kind

    def activations(self, rng):
        name, data = rng.choice(list(self.images.items()))
        kind = "image/jpeg" if name.endswith(".jpg") else "image/png"
        query = {"layer": rng.choice(self.spatial), "colormap": rng.choice(["viridis", "grey"])}
        return "POST", "/activations?" + urllib.parse.urlencode(query), data, kind

    def predict(self, rng):
        name, data = rng.choice(list(self.images.items()))
        return "POST", "/api/predict?top=5", data, "application/octet-stream"

    def bad_upload(self, rng):
        _, good = rng.choice(list(self.images.items()))
        choice = rng.randrange(6)
        if choice == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 4096)))
        elif choice == 1:
            data = good[: rng.randrange(8, max(9, len(good) // 2))]
        elif choice == 2:
            data = b""
        elif choice == 3:
            data = png_claiming(65535, 65535)
        elif choice == 4:
            body, kind = multipart({"note": (None, "text/plain", b"no image here")})
            return "POST", "/heatmap", body, kind
        else:
            return "POST", "/heatmap?layer=no_such_layer", good, "image/png"
        return "POST", rng.choice(["/heatmap", "/activations", "/api/predict"]), data, "image/png"

    def bad_query(self, rng):
        layer, filters = rng.choice(self.convolutions)
        return "GET", rng.choice(
            [
                f"/filters/{layer}/{filters + rng.randrange(0, 10**6)}",
                f"/filters/{layer}/9223372036854775807",
                f"/filters/{layer}?first=-1",
                "/filters/no_such_layer/0",
                f"/filters/{layer}/0?steps=0",
            ]
        ), None, None

    def filter_job(self, rng):
        layer, filters = rng.choice(self.convolutions)
        index = rng.randrange(filters)
        steps = rng.choice([5, 10, 20])
        return "GET", f"/filters/{layer}/{index}?steps={steps}&size=96&wait=0", None, None

    MIX = [("heatmap", 30), ("activations", 15), ("predict", 15), ("bad_upload", 20), ("bad_query", 10), ("filter_job", 10)]

    def client(self, number):
        rng = random.Random(self.random.random() + number)
        kinds = [k for k, _ in self.MIX]
        weights = [w for _, w in self.MIX]
        while time.monotonic() < self.deadline:
            kind = rng.choices(kinds, weights)[0]
            method, path, body, content_type = getattr(self, kind)(rng)
            self.one(kind, method, path, body, content_type)
            if self.jobs and rng.random() < 0.2:
                with self.lock:
                    job = rng.choice(self.jobs)
                self.one("job_state", "GET", f"/jobs/{job}", None, None)

    def one(self, kind, method, path, body, content_type):
        start = time.monotonic()
        try:
            status, headers, data = self.call(method, path, body, content_type)
        except Exception as error:  # connection refused/reset, timeout
            with self.lock:
                self.statuses[(kind, "error")] += 1
                self.failures.append((kind, f"{method} {path}: {type(error).__name__}: {error}"))
            return
        elapsed = time.monotonic() - start
        with self.lock:
            self.statuses[(kind, status)] += 1
            self.latency.setdefault(kind, []).append(elapsed)
            if status >= 500:
                self.failures.append((kind, f"{method} {path}: {status} {data[:200]!r}"))
            if kind == "filter_job" and status == 202:
                job = json.loads(data).get("id")
                if job and len(self.jobs) < 500:
                    self.jobs.append(job)

    # The server process

    def sample(self, minute):
        status = open(f"/proc/{self.pid}/status").read()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields["VmRSS"].split()[0]) / 1024
        threads = int(fields["Threads"])
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        self.samples.append((minute, round(rss, 1), fds, threads))
        print(f"  minute {minute:5.1f}: RSS {rss:7.1f} MiB, {fds} fds, {threads} threads", flush=True)

    def run(self):
        started = time.monotonic()
        self.sample(0.0)
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.clients)]
        for t in threads:
            t.start()
        next_sample = started + 60
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            if time.monotonic() >= next_sample:
                if not os.path.exists(f"/proc/{self.pid}"):
                    self.failures.append(("server", "the server process is gone"))
                    break
                self.sample((time.monotonic() - started) / 60)
                next_sample += 60
        for t in threads:
            t.join(timeout=150)
        if os.path.exists(f"/proc/{self.pid}"):
            self.sample((time.monotonic() - started) / 60)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's process id (RSS and fds from /proc)")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    soak = Soak(args.url, args.pid, args.minutes, args.clients, args.seed)
    print(f"soak: {args.minutes} min, {args.clients} clients, {len(soak.spatial)} spatial layers, methods {soak.methods}")
    soak.run()

    print("\nresponses (kind: status × count), latency p50 / p99 / max in ms:")
    for kind in sorted({k for k, _ in soak.statuses}):
        counts = ", ".join(f"{s}×{n}" for (k, s), n in sorted(soak.statuses.items(), key=lambda x: str(x[0][1])) if k == kind)
        lat = sorted(soak.latency.get(kind, [0]))
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
        print(f"  {kind:12s} {counts:40s} {pick(0.5):8.1f} / {pick(0.99):8.1f} / {lat[-1] * 1000:8.1f}")
    total = sum(soak.statuses.values())
    print(f"total {total} requests; failures (5xx, connection errors): {len(soak.failures)}")
    for kind, detail in soak.failures[:20]:
        print(f"  {kind}: {detail}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "minutes": args.minutes,
                    "clients": args.clients,
                    "samples": [dict(zip(["minute", "rss_mib", "fds", "threads"], s)) for s in soak.samples],
                    "statuses": {f"{k} {s}": n for (k, s), n in soak.statuses.items()},
                    "failures": soak.failures,
                },
                f,
                indent=2,
            )
    sys.exit(1 if soak.failures else 0)


if __name__ == "__main__":
    main()
