"""Benchmark 7: throughput with 1, 2 and 4 app worker processes (issue #18).

For each worker count (`uvicorn --workers N`, one PostgreSQL database, the Stripe sandbox in its
own process at 0 ms), at concurrency 32 after a warm-up:

  booking              POST /api/Sessions/book, every request a free slot (as bench_booking_cost)
  webhook, ignored     a new `payment_intent.created` event (one statement)
  webhook, completed   `checkout.session.completed` for a real Pending booking (the whole
                       fulfilment and the meeting link; as bench_webhooks)

and prints requests/s with the CPU of each process group per request, so what limits each row
shows: on this 2-core machine the load generator, the sandbox and PostgreSQL share the two cores
with the app's workers, so more than two workers cannot add cores, only contention.

No goal of its own: the figures answer "what does another worker buy" (docs/PERFORMANCE.md §8).

    .venv/bin/python benchmarks/bench_scale_out.py [--quick] [--write-docs] [--counts 1,2,4]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_webhooks as bw  # noqa: E402
import harness as h  # noqa: E402
import loadgen  # noqa: E402


def main() -> None:
    ap = h.parser(__doc__)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run")
    ap.add_argument("--counts", default="1,2,4", help="worker counts, comma-separated")
    args = ap.parse_args()
    duration = args.duration or (2.0 if args.quick else 10.0)
    warmup = 1.0 if args.quick else 2.0
    conc = args.concurrency
    counts = [int(n) for n in args.counts.split(",")]
    dbname = args.db or "tutorbook_bench_scale"
    if not args.quick:
        h.wait_for_quiet()

    rows, cpu_rows, results = [], [], {}
    for workers in counts:
        h.fresh_database(dbname, revision=h.LOADED_AT)  # bw.seed_pending COPYs the pre-#27 layout, then migrates
        seed = h.seed_people(dbname, teachers=64, parents=64, tag="s")
        pending = bw.seed_pending(dbname, int(1500 * (duration + warmup + 2)))
        kinds = {
            "booking": ("POST /api/Sessions/book", h.Booker(seed, h.Slots(seed.teachers)), (201,)),
            "ignored": ("webhook, payment_intent.created", bw.Events("ignored"), (200,)),
            "completed": ("webhook, checkout.session.completed", bw.Events("completed", bookings=pending), (200,)),
        }
        with h.Servers(dbname, workers=workers) as srv:
            host, port = "127.0.0.1", srv.app_port
            srv.sandbox_config(latency_ms=0)
            for _label, make, expect in kinds.values():  # warm every worker's paths
                loadgen.run(loadgen.closed_loop(host, port, name="warm-up", concurrency=conc, duration=1.0,
                                                warmup=0.0, make=make, expect=expect))
            for key, (label, make, expect) in kinds.items():
                meter = h.CpuMeter(srv)
                r = loadgen.run(loadgen.closed_loop(host, port, name=f"{label}, {workers} worker(s)",
                                                    concurrency=conc, duration=duration, warmup=warmup, make=make,
                                                    expect=expect, window=h.windows(meter, None)))
                print(r.summary())
                print("   ", h.cpu_line(meter.result, r.ok))
                for sample in r.samples:
                    print("    unexpected:", sample)
                results.setdefault(key, {})[workers] = r.rps
                rows.append(h.load_row(r))
                cpu_rows.append(h.cpu_row(r.name, meter.result, r.ok))

    base = {key: by[counts[0]] for key, by in results.items()}
    scale = [[key, *(f"{by[n]:,.0f} ({by[n] / base[key]:.2f}×)" if base[key] else f"{by[n]:,.0f}" for n in counts)]
             for key, by in results.items()]
    print("\nrequests/s by worker count (× the first):")
    for row in scale:
        print("  ", row)
    section = "\n\n".join([
        f"PostgreSQL, Stripe sandbox at 0 ms, concurrency {conc}, {duration:g} s measured after {warmup:g} s "
        "warm-up per run; one fresh database per worker count.",
        h.md_table(["kind", *(f"{n} worker(s)" for n in counts)], scale),
        h.md_table(h.LOAD_HEADER, rows),
        "CPU milliseconds per request over the measured window (from /proc; `app` sums every worker):",
        h.md_table(h.CPU_HEADER, cpu_rows),
    ])
    h.report("scale_out", [], section, quick=args.quick, write_docs=args.write_docs,
             extra={"requests_per_second": {k: {str(n): v for n, v in by.items()} for k, by in results.items()}})


if __name__ == "__main__":
    main()
