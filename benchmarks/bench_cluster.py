"""Benchmark 11: the cluster's booking throughput against one process on the same machine (issue #31).

Three shapes, each on a fresh PostgreSQL database with the same seed, the Stripe sandbox (0 ms)
in its own process, at the same concurrency, bookings as in bench_booking_cost (each a free slot):

  1 process, direct        one app process (`uvicorn bench_app:app`, as `tutorbook serve`)
                           straight to PostgreSQL
  1 process, HAProxy +     the same behind deploy/haproxy.cfg and deploy/pgbouncer.ini (Debian's
  PgBouncer                HAProxy and PgBouncer, transaction mode, TUTORBOOK_DB_PGBOUNCER=true):
                           what the two hops cost alone
  2 processes, HAProxy +   the cluster: two app processes behind both (as tests/cluster runs
  PgBouncer                them), HAProxy balancing round robin

The configurations are the shipped files with only addresses, ports and authentication
substituted (tests/cluster/test_haproxy.py writes them). No goal: on a 2-core machine the load
generator, the sandbox, PostgreSQL, PgBouncer and HAProxy share the cores with the app, so the
figure says what a second process buys here, and what the hops cost.

    .venv/bin/python benchmarks/bench_cluster.py [--quick] [--write-docs] [--concurrency N]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' HAProxy / PgBouncer wrappers

import harness as h  # noqa: E402
import httpx  # noqa: E402
import loadgen  # noqa: E402
from tests.cluster.test_haproxy import HAPROXY, PGBOUNCER, HAProxy, PgBouncer  # noqa: E402

SHAPES = {
    "direct": "1 process, direct to PostgreSQL",
    "hops": "1 process, HAProxy + PgBouncer",
    "cluster": "2 processes, HAProxy + PgBouncer",
}


def _replica(srv: h.Servers, port: int, env: dict, n: int) -> subprocess.Popen:
    log = srv.run_dir / f"web{n}.log"
    proc = subprocess.Popen(
        [str(h.VENV_BIN / "uvicorn"), "bench_app:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=srv.run_dir,
    )
    srv.procs[f"web{n}"] = proc
    return proc


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"replica at {url} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"replica at {url} not ready in {timeout}s")


def run_shape(shape: str, dbname: str, *, conc: int, duration: float, warmup: float):
    """One shape's booking run: (LoadResult, CPU by process group)."""
    h.fresh_database(dbname)
    seed = h.seed_people(dbname, teachers=max(conc, 32), parents=max(conc, 32))
    make = h.Booker(seed, h.Slots(seed.teachers))
    if shape == "direct":
        with h.Servers(dbname) as srv:
            srv.sandbox_config(latency_ms=0)
            return _measure(h.CpuMeter(srv), "127.0.0.1", srv.app_port, shape, make, conc=conc, duration=duration,
                            warmup=warmup)
    replicas = 1 if shape == "hops" else 2
    bouncer = PgBouncer(database=dbname).start()
    ports = [h.free_port() for _ in range(2)]
    balancer = HAProxy(replicas=ports)  # deploy/haproxy.cfg has two servers; the second is DOWN for "hops"
    srv = h.Servers(dbname, app=False).start()
    try:
        srv.sandbox_config(latency_ms=0)
        env = srv.env()
        env.update({
            "TUTORBOOK_DATABASE_URL": bouncer.url(h.sa_url(dbname)),
            "TUTORBOOK_DATABASE_DIRECT_URL": h.sa_url(dbname),
            "TUTORBOOK_DB_PGBOUNCER": "true",
            "TUTORBOOK_DB_POOL_SIZE": "5",  # deploy/compose.yaml's
            "TUTORBOOK_TRUSTED_PROXIES": "127.0.0.1",
        })
        procs = [_replica(srv, port, env, n) for n, port in enumerate(ports[:replicas], start=1)]
        for port, proc in zip(ports, procs, strict=False):
            _wait_ready(f"http://127.0.0.1:{port}", proc)
        balancer.start()
        wanted = {f"web{n}": "UP" if n <= replicas else "DOWN" for n in (1, 2)}
        deadline = time.monotonic() + 30
        while not all(balancer.server(name)["status"].startswith(state) for name, state in wanted.items()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"HAProxy's servers are not {wanted}")
            time.sleep(0.2)
        groups = {
            "app": lambda: [p.pid for p in procs],
            "sandbox": lambda: srv.pids("sandbox"),
            "haproxy": lambda: [balancer.proc.pid],
            "pgbouncer": lambda: [bouncer.proc.pid],
        }
        meter = h.CpuMeter(None, dbname=dbname, extra=groups)
        return _measure(meter, "127.0.0.1", balancer.port, shape, make, conc=conc, duration=duration, warmup=warmup)
    finally:
        for n in (1, 2):
            proc = srv.procs.pop(f"web{n}", None)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        srv.stop()
        balancer.stop()
        bouncer.stop()


def _measure(meter: h.CpuMeter, host, port, shape, make, *, conc, duration, warmup):
    loadgen.run(loadgen.closed_loop(host, port, name="warm-up", concurrency=conc, duration=1.0, warmup=0.0,
                                    make=make, expect=(201,)))
    r = loadgen.run(loadgen.closed_loop(host, port, name=SHAPES[shape], concurrency=conc, duration=duration,
                                        warmup=warmup, make=make, expect=(201,), window=h.windows(meter, None)))
    print(r.summary())
    print("   ", h.cpu_line(meter.result, r.ok))
    for sample in r.samples:
        print("    unexpected:", sample)
    return r, meter.result


def main() -> None:
    ap = h.parser(__doc__)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run")
    args = ap.parse_args()
    if not (Path(HAPROXY).exists() and Path(PGBOUNCER).exists()):
        print("SKIPPED: needs Debian's haproxy and pgbouncer (scripts/ensure-haproxy, scripts/ensure-pgbouncer)")
        return
    duration = args.duration or (3.0 if args.quick else 15.0)
    warmup = 1.0 if args.quick else 3.0
    dbname = args.db or "tutorbook_bench_cluster"
    conc = args.concurrency
    if not args.quick:
        h.wait_for_quiet()
    runs, cpus = {}, {}
    for shape in SHAPES:
        runs[shape], cpus[shape] = run_shape(shape, dbname, conc=conc, duration=duration, warmup=warmup)
    base = runs["direct"].rps
    ratio = runs["cluster"].rps / base if base else 0.0
    print(f"\ncluster ÷ one process direct: {ratio:.2f}")
    keys = ["app", "sandbox", "postgres", "loadgen", "haproxy", "pgbouncer"]
    cpu_rows = [[SHAPES[s], *(f"{1000 * cpus[s][k] / max(runs[s].ok, 1):.2f}" if k in cpus[s] else "-" for k in keys),
                 f"{cpus[s].get('machine_busy_pct', 0):.0f}%", f"{cpus[s].get('other_cores', 0):.2f}"] for s in runs]
    section = "\n\n".join([
        f"`POST /api/Sessions/book`, concurrency {conc}, {duration:g} s measured after {warmup:g} s warm-up, Stripe "
        "sandbox at 0 ms, one fresh database per shape; HAProxy and PgBouncer as deploy/ ships them (addresses, "
        "ports and authentication substituted), the replicas with TUTORBOOK_DB_PGBOUNCER=true and pool size 5.",
        h.md_table(["shape", "bookings/s", "× one process direct"],
                   [[SHAPES[s], f"{r.rps:,.1f}", f"{r.rps / base:.2f}" if base else "-"] for s, r in runs.items()]),
        h.md_table(h.LOAD_HEADER, [h.load_row(r) for r in runs.values()]),
        "CPU milliseconds per booking over the measured window (from /proc; `app` sums the replicas):",
        h.md_table(["shape", *keys, "machine busy", "other cores"], cpu_rows),
        *(["**Noisy run:** other processes used the CPU meanwhile (last column)."]
          if h.noisy(*cpus.values()) else []),
    ])
    h.report("cluster", [], section, quick=args.quick, write_docs=args.write_docs,
             extra={"bookings_per_second": {s: r.rps for s, r in runs.items()}, "cluster_vs_direct": round(ratio, 3)})


if __name__ == "__main__":
    main()
