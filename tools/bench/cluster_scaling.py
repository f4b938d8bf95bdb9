#!/usr/bin/env python3
"""Scale-out bench: the same filter grids rendered by one ConvLens process with 2 OpenMP
threads, and by an API-only replica with 2 `convlens worker` processes of 1 thread each,
all on one private PostgreSQL 15 (a temporary cluster on a free port). Prints wall times,
the speed-up, and the idle share: the job slots' time not spent running a job (queue round
trips, model loading races, the last job running alone), from the job rows' start/finish times.

    python3 tools/bench/cluster_scaling.py --bin .build/release/convlens [--every 6] [--count 16]

Run it on a quiet machine (stdlib only; needs Debian's postgresql and a release build).
"""
import argparse, json, os, shutil, socket, subprocess, tempfile, time, urllib.request

PGBIN = "/usr/lib/postgresql/15/bin"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_pg(args):
    prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    subprocess.run(prefix + args, check=True, stdout=subprocess.DEVNULL)


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, dict(r.headers), r.read()


class Postgres:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="convlens-bench-pg-")
        os.chmod(self.dir, 0o755)
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        as_pg([f"{PGBIN}/initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "convlens", "-N"])
        as_pg([f"{PGBIN}/pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w",
               "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start"])
        as_pg([f"{PGBIN}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "convlens", "convlens"])
        self.url = f"postgres://convlens@127.0.0.1:{self.port}/convlens"

    def sql(self, q):
        prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        return subprocess.run(prefix + [f"{PGBIN}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "convlens",
                              "-d", "convlens", "-XAtq", "-c", q], check=True, capture_output=True, text=True).stdout.strip()

    def stop(self):
        as_pg([f"{PGBIN}/pg_ctl", "-D", f"{self.dir}/data", "-m", "fast", "-w", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)


def start(binary, args, env, log):
    e = dict(os.environ, CONVLENS_CACHE_DIR="", **env)
    return subprocess.Popen([binary] + args, cwd=ROOT, env=e, stdout=log, stderr=subprocess.STDOUT)


def run(config, binary, layers, count):
    pg = Postgres()
    logs = tempfile.TemporaryFile()
    procs = []
    try:
        port = free_port()
        procs.append(start(binary, ["serve", "--port", str(port), "--database-url", pg.url],
                           {"CONVLENS_JOBS_WORKERS": str(config["replica_workers"]),
                            "CONVLENS_COMPUTE_OMP_THREADS": str(config["replica_threads"])}, logs))
        for _ in range(config["workers"]):
            procs.append(start(binary, ["worker", "--database-url", pg.url, "--threads", "1"], {}, logs))
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if get(base + "/readyz")[0] == 200:
                    break
            except Exception:
                time.sleep(0.2)
        time.sleep(3)  # the workers load the model too
        began = time.time()
        locations = []
        for layer in layers:
            status, headers, _ = get(f"{base}/filters/{layer}?count={count}&wait=0")
            locations.append(headers.get("Location"))
        while True:
            states = [json.loads(get(base + l)[2])["state"] for l in locations if l]
            if all(s in ("done", "failed", "cancelled") for s in states):
                break
            time.sleep(0.5)
        wall = time.time() - began
        assert all(s == "done" for s in states), states
        run_s = float(pg.sql("SELECT sum(extract(epoch FROM finished_at - started_at)) FROM jobs"))
        owners = pg.sql("SELECT count(DISTINCT split_part(lease_owner, ':', 2)) FROM jobs")
        return wall, run_s, int(owners)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        pg.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, ".build/release/convlens"))
    ap.add_argument("--every", type=int, default=6, help="every Nth convolution of the model (1: all)")
    ap.add_argument("--count", type=int, default=16)
    a = ap.parse_args()
    # The gallery draws each convolution at its activated output; /api/model has that mapping.
    port = free_port()
    p = subprocess.Popen([a.bin, "serve", "--port", str(port)], cwd=ROOT, env=dict(os.environ, CONVLENS_CACHE_DIR=""),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                api = json.loads(get(f"http://127.0.0.1:{port}/api/model")[2])
                break
            except Exception:
                time.sleep(0.2)
    finally:
        p.terminate()
        p.wait()
    layers = [l["activated_output"] for l in api["layers"] if l.get("convolution")][::a.every]
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    print(f"{len(layers)} grids of {a.count} filters (book, {api['input']['height']} px): {', '.join(layers)}; CPU {cpu}, {os.cpu_count()} cores")
    configs = [
        {"name": "1 process, 2 OpenMP threads", "replica_workers": 1, "replica_threads": 2, "workers": 0},
        {"name": "2 workers, 1 thread each", "replica_workers": 0, "replica_threads": 1, "workers": 2},
    ]
    results = []
    for c in configs:
        wall, run_s, owners = run(c, a.bin, layers, a.count)
        slots = max(1, c["workers"]) if c["workers"] else c["replica_workers"]
        results.append(wall)
        print(f"{c['name']:32s} wall {wall:7.1f} s  jobs' run time {run_s:7.1f} s  processes that ran jobs {owners}  "
              f"idle share {(wall * slots - run_s) / (wall * slots) * 100:5.1f} %")
    print(f"speed-up of 2 workers × 1 thread over 1 process × 2 threads: {results[0] / results[1]:.2f}×")


if __name__ == "__main__":
    main()
