"""Probe: what the request-id `BaseHTTPMiddleware` costs, against the same app with a plain ASGI
middleware doing the same job (benchmarks/app_variants.py). Not a goal benchmark: evidence
for docs/PERFORMANCE.md.

Each variant: its own fresh database and servers, then GET /bench/ping, POST /bench/insert,
duplicate webhooks and bookings (Stripe 0 ms), concurrency 32; the figure to read is the app's
CPU per request (from /proc), which noise moves far less than throughput.

    .venv/bin/python benchmarks/probe_middleware.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_webhooks as wh  # noqa: E402
import harness as h  # noqa: E402
import loadgen  # noqa: E402

VARIANTS = {
    "as is (BaseHTTPMiddleware)": ["tutorbook.asgi:app"],
    "plain ASGI request-id middleware": ["--factory", "app_variants:request_id_asgi"],
}


def main() -> None:
    ap = h.parser(__doc__)
    args = ap.parse_args()
    duration = 3.0 if args.quick else 8.0
    if not args.quick:
        h.wait_for_quiet()
    rows = []
    for variant, target in VARIANTS.items():
        dbname = "tutorbook_bench_probe"
        h.fresh_database(dbname)
        seed = h.seed_people(dbname, teachers=32, parents=32)
        booker = h.Booker(seed, h.Slots(seed.teachers))
        new = wh.Events("ignored")
        with h.Servers(dbname, workers=args.workers, app_target=target) as srv:
            host, port = "127.0.0.1", srv.app_port
            loadgen.run(loadgen.closed_loop(host, port, name="seed events", concurrency=32, duration=2.0,
                                            warmup=0.0, make=new, expect=(200,)))
            plan = [("GET /bench/ping", lambda i: ("GET", "/bench/ping", b"", b"")),
                    ("POST /bench/insert", lambda i: ("POST", "/bench/insert", b"", b"")),
                    ("duplicate webhook", wh.Events("ignored", ids=list(new.ids))),
                    ("POST /api/Sessions/book", booker)]
            for name, make in plan:
                meter = h.CpuMeter(srv)
                r = loadgen.run(loadgen.closed_loop(host, port, name=name, concurrency=32, duration=duration,
                                                    warmup=1.0, make=make, expect=(200, 201),
                                                    window=h.windows(meter)))
                cpu = meter.result
                rows.append([variant, name, f"{r.rps:,.0f}", f"{1000 * cpu['app'] / max(r.ok, 1):.2f}",
                             f"{cpu['other_cores']:.2f}"])
                print("  ".join(rows[-1]), flush=True)
    print()
    print(h.md_table(["app", "request", "req/s", "app CPU ms / request", "other processes (cores)"], rows))


if __name__ == "__main__":
    main()
