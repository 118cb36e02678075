"""Benchmark 13: what tracing costs (issue #31): booking throughput and the app's CPU per request
with TUTORBOOK_TRACING off (the default: nothing of OpenTelemetry's SDK loaded) and on (every
span exported over OTLP/HTTP to a collector stand-in in this process that answers 200).

Same database, seed, concurrency and Stripe sandbox (0 ms) for both; the app is restarted between
them. Kinds: `GET /bench/ping` (a request span, no SQL), `POST /api/Sessions/book` (a request
span, about a dozen SQL spans, the Stripe call's client span). No goal: the figures are the price
of turning it on (docs/PERFORMANCE.md, "Tracing").

    .venv/bin/python benchmarks/bench_tracing.py [--quick] [--write-docs] [--concurrency N]
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
import loadgen  # noqa: E402


class Collector:
    """A stand-in OTLP/HTTP collector: takes every POST /v1/traces, counts its bytes, answers 200."""

    def __init__(self) -> None:
        self.requests = self.bytes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                n = int(self.headers.get("content-length") or 0)
                self.rfile.read(n)
                outer.requests += 1
                outer.bytes += n
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def main() -> None:
    ap = h.parser(__doc__)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run")
    args = ap.parse_args()
    duration = args.duration or (3.0 if args.quick else 15.0)
    warmup = 1.0 if args.quick else 3.0
    dbname = args.db or "tutorbook_bench_tracing"
    conc = args.concurrency
    if not args.quick:
        h.wait_for_quiet()
    collector = Collector()
    h.fresh_database(dbname)
    seed = h.seed_people(dbname, teachers=max(conc, 32), parents=max(conc, 32))
    slots = h.Slots(seed.teachers)
    labels = {"ping": "GET /bench/ping", "book": "POST /api/Sessions/book"}
    runs, cpus = {}, {}
    try:
        for mode in ("off", "otlp"):
            env = {"TUTORBOOK_TRACING": mode, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
            make = {"ping": lambda i: ("GET", "/bench/ping", b"", b""), "book": h.Booker(seed, slots)}
            with h.Servers(dbname, workers=args.workers, app_env=env) as srv:
                host, port = "127.0.0.1", srv.app_port
                srv.sandbox_config(latency_ms=0)
                for key in make:
                    loadgen.run(loadgen.closed_loop(host, port, name="warm-up", concurrency=conc, duration=1.0,
                                                    warmup=0.0, make=make[key], expect=(200, 201)))
                for key in make:
                    meter = h.CpuMeter(srv)
                    r = loadgen.run(loadgen.closed_loop(host, port, name=f"{labels[key]}, tracing {mode}",
                                                        concurrency=conc, duration=duration, warmup=warmup,
                                                        make=make[key], expect=(200, 201),
                                                        window=h.windows(meter, None)))
                    runs[(mode, key)], cpus[(mode, key)] = r, meter.result
                    print(r.summary())
                    print("   ", h.cpu_line(meter.result, r.ok))
                    for sample in r.samples:
                        print("    unexpected:", sample)
    finally:
        collector.stop()
    print(f"collector: {collector.requests} exports, {collector.bytes / 1e6:.1f} MB")
    rows = []
    for key in labels:
        off, on = runs[("off", key)], runs[("otlp", key)]
        off_ms = 1000 * cpus[("off", key)]["app"] / max(off.ok, 1)
        on_ms = 1000 * cpus[("otlp", key)]["app"] / max(on.ok, 1)
        rows.append([labels[key], f"{off.rps:,.0f}", f"{on.rps:,.0f}", f"{on.rps / off.rps:.2f}" if off.rps else "-",
                     f"{off_ms:.2f}", f"{on_ms:.2f}", f"+{on_ms - off_ms:.2f}"])
        print(f"{labels[key]}: {off.rps:,.0f}/s off, {on.rps:,.0f}/s on; app CPU {off_ms:.2f} -> {on_ms:.2f} ms")
    section = "\n\n".join([
        f"uvicorn --workers {args.workers}, concurrency {conc}, {duration:g} s measured after {warmup:g} s warm-up, "
        "Stripe sandbox at 0 ms; tracing on = TUTORBOOK_TRACING=otlp, every span exported (sample ratio 1.0, "
        f"batched) to a local collector stand-in ({collector.requests} exports, {collector.bytes / 1e6:.1f} MB).",
        h.md_table(["request", "req/s off", "req/s on", "on ÷ off", "app CPU ms off", "app CPU ms on", "cost"], rows),
        h.md_table(h.LOAD_HEADER, [h.load_row(r) for r in runs.values()]),
        "CPU milliseconds per request over the measured window (from /proc):",
        h.md_table(h.CPU_HEADER, [h.cpu_row(r.name, cpus[k], r.ok) for k, r in runs.items()]),
        *(["**Noisy run:** other processes used the CPU meanwhile (last column)."]
          if h.noisy(*cpus.values()) else []),
    ])
    h.report("tracing", [], section, quick=args.quick, write_docs=args.write_docs,
             extra={"cpu_ms_per_request": {f"{m}:{k}": h.cpu_per_request(cpus[(m, k)], runs[(m, k)].ok)
                                           for m, k in runs}})


if __name__ == "__main__":
    main()
