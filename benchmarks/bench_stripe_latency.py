"""Benchmark 1: Stripe latency must not cost throughput.

100 parents book at once, back to back (closed loop), each booking a distinct free slot,
first with the sandbox answering at once, then with 300 ms added to every Stripe call.

Goals (issue #7):
  throughput(300 ms) >= 0.9 x min(concurrency / 0.3 s, throughput(0 ms) of the same run)
  p50(300 ms)        <= 1.3 x 300 ms + p50(0 ms)

    .venv/bin/python benchmarks/bench_stripe_latency.py            # full run (about a minute)
    .venv/bin/python benchmarks/bench_stripe_latency.py --quick    # CI-sized
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
import loadgen  # noqa: E402


def main() -> None:
    ap = h.parser(__doc__)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--latency-ms", type=int, default=300)
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run")
    args = ap.parse_args()
    duration = args.duration or (4.0 if args.quick else 20.0)
    warmup = 1.5 if args.quick else 4.0
    dbname = args.db or "tutorbook_bench"
    conc = args.concurrency
    if not args.quick:
        h.wait_for_quiet()

    def attempt():
        h.fresh_database(dbname)
        seed = h.seed_people(dbname, teachers=conc, parents=conc)
        booker = h.Booker(seed, h.Slots(seed.teachers))
        runs, cpus, profiles = {}, {}, {}
        with h.Servers(dbname, workers=args.workers) as srv:
            host, port = "127.0.0.1", srv.app_port
            srv.sandbox_config(latency_ms=0)
            loadgen.run(loadgen.closed_loop(host, port, name="warm-up", concurrency=conc, duration=1.0,
                                            warmup=0.5, make=booker, expect=(201,)))
            for latency in (0, args.latency_ms):
                srv.sandbox_config(latency_ms=latency)
                meter = h.CpuMeter(srv)
                prof = h.Profiler(srv, f"stripe_latency-{latency}ms", duration) if args.profile else None
                r = loadgen.run(loadgen.closed_loop(host, port, name=f"book, Stripe +{latency} ms", concurrency=conc,
                                                    duration=duration, warmup=warmup, make=booker, expect=(201,),
                                                    window=h.windows(meter, prof)))
                runs[latency], cpus[latency] = r, meter.result
                print(r.summary())
                print("   ", h.cpu_line(cpus[latency], r.ok))
                for sample in r.samples:
                    print("    unexpected:", sample)
                if prof is not None:
                    profiles[latency] = prof.summary(r.ok, h.BOOKING_CATEGORIES)
                    print(profiles[latency])
            srv.sandbox_config(latency_ms=0)

        return (runs, cpus, profiles), list(cpus.values())

    runs, cpus, profiles = h.least_noisy(args.quick, attempt, tries=args.tries)

    r0, rl = runs[0], runs[args.latency_ms]
    lat_s = args.latency_ms / 1000
    ceiling = min(conc / lat_s, r0.rps)
    thr_goal = 0.9 * ceiling
    p50_goal = 1.3 * args.latency_ms + r0.pct(50)
    goals = [
        h.Goal("stripe_latency.throughput",
               f"booking throughput at +{args.latency_ms} ms Stripe: {rl.rps:,.1f}/s "
               f"({rl.rps / ceiling:.0%} of min({conc}/{lat_s:g}s = {conc / lat_s:,.0f}, 0-ms {r0.rps:,.1f}))",
               f">= 90% ({thr_goal:,.1f}/s)", rl.rps / thr_goal if thr_goal else 0.0),
        h.Goal("stripe_latency.p50",
               f"booking p50 at +{args.latency_ms} ms: {rl.pct(50):.0f} ms (0 ms: {r0.pct(50):.0f} ms)",
               f"<= 1.3 x {args.latency_ms} + {r0.pct(50):.0f} = {p50_goal:.0f} ms",
               p50_goal / rl.pct(50) if rl.pct(50) else 0.0),
    ]
    section = "\n\n".join([
        f"{conc} parents book at once (closed loop, each request a distinct free slot: teacher i mod {conc}, "
        f"successive half hours), {duration:g} s measured after {warmup:g} s warm-up, uvicorn --workers "
        f"{args.workers}, sandbox as its own process with `latency_ms` set through `/_sandbox/config`.",
        h.md_table(h.LOAD_HEADER, [h.load_row(r) for r in runs.values()]),
        f"Throughput at +{args.latency_ms} ms is **{rl.rps / ceiling:.0%}** of min({conc} ÷ {lat_s:g} s = "
        f"{conc / lat_s:,.0f}/s, {r0.rps:,.1f}/s at 0 ms) — goal 90%. p50 {rl.pct(50):.0f} ms against a "
        f"ceiling of {p50_goal:.0f} ms.",
        "CPU milliseconds per booking over the measured window (from /proc; every process shares the "
        "same cores):",
        h.md_table(h.CPU_HEADER, [h.cpu_row(f"Stripe +{lat} ms", cpus[lat], runs[lat].ok) for lat in runs]),
        *(["**Noisy run:** other processes used the CPU meanwhile (last column); figures are lower than "
           "on an idle machine."] if h.noisy(*cpus.values()) else []),
        *[f"Profile at +{lat} ms:\n\n{text}" for lat, text in profiles.items()],
    ])
    h.report("stripe_latency", goals, section, quick=args.quick, write_docs=args.write_docs, profiled=args.profile,
             extra={"runs": {k: v.as_dict() for k, v in runs.items()},
                    "cpu_ms_per_request": {k: h.cpu_per_request(cpus[k], runs[k].ok) for k in runs}})


if __name__ == "__main__":
    main()
