"""Benchmark 3: Stripe webhook events handled per second, new and duplicate.

Events are signed here as Stripe signs them (`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of
"t.body" with the endpoint secret>`) and posted to `POST /api/StripeWebhook/webhook`, so the
figure is the webhook path's own cost — verify, record the id once, dispatch, answer:

  new, ignored type    `payment_intent.created` (a type the app does not act on): verify +
                       INSERT ... ON CONFLICT DO NOTHING RETURNING, with outcome `ignored`
                       (on PostgreSQL one INSERT per batch of events that arrive together)
  new, expired         `checkout.session.expired` for a session no booking has: the same plus
                       the lookup by stripe_session_id (unique index) -> unknown_booking
  duplicate            the ignored events again, same ids: verify + the INSERT ... ON
                       CONFLICT that finds the id and writes nothing (shared as above)
  new, completed       `checkout.session.completed` (paid) for a real Pending booking with that
                       Checkout Session (seeded with COPY, one per event): the whole fulfilment —
                       record, the checks against the booking, Pending -> Confirmed with its
                       history row and the teacher's terms, the two confirmation notices in the
                       outbox — and its follow-up after the answer (the meeting link, Jitsi)

The payload is a full-size event as Stripe sends it (about 2 KB). After the duplicate run,
PostgreSQL's own counters show what a duplicate costs in the database (index scans, rows
written, statements) per event.

Goal (issue #7): >= 1,000 events/s; a duplicate costs one indexed lookup.

    .venv/bin/python benchmarks/bench_webhooks.py [--quick] [--workers N] [--profile]
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402
import loadgen  # noqa: E402
import psycopg  # noqa: E402

WEBHOOK = "/api/StripeWebhook/webhook"
CATEGORIES = [
    ("whole request in the event loop (uvicorn + middleware + endpoint)", "Server.run"),
    ("... routing (Starlette/FastAPI route matching)", "APIRouter.matches"),
    ("... dependencies (services, request)", "solve_dependencies"),
    ("... signature check + event parse (stripe.construct_event)", "StripeGateway.construct_event"),
    ("... the event's shape (pydantic)", "check_shape"),
    ("... the use case on the async engine (AsyncSession.run_sync)", "AsyncSession.run_sync"),
    ("...... record_once (INSERT ... ON CONFLICT)", "record_once"),
    ("...... dispatch (fulfil, cancel, ...)", "dispatch (tutorbook"),
    ("...... the meeting link in the same transaction", "make_instant_links"),
    ("...... asyncpg: bind, execute, read", "PreparedStatement.__do_execute"),
    ("... session open / BEGIN / COMMIT / close", "Database.async_scope"),
    ("... sending the response (uvicorn write)", "RequestResponseCycle.send"),
    ("ignored and duplicate events' shared INSERT (Coalescer task)", "Coalescer._drain"),
    ("DB worker threads (the thread path: SQLite, or TUTORBOOK_DB_ASYNC=false)", "WorkerThread.run"),
]


def checkout_object(session_id: str) -> dict:
    """A Checkout Session as Stripe puts it in checkout.session.* events (trimmed of nothing
    the app reads; the size is realistic)."""
    return {
        "id": session_id, "object": "checkout.session", "after_expiration": None, "allow_promotion_codes": None,
        "amount_subtotal": 6000, "amount_total": 6000, "automatic_tax": {"enabled": False, "liability": None,
                                                                         "status": None},
        "billing_address_collection": None, "cancel_url": "http://127.0.0.1:8000/payment/cancel?session_id="
        "{CHECKOUT_SESSION_ID}&type=session-booking&booking_id=" + "0" * 36,
        "client_reference_id": None, "consent": None, "consent_collection": None, "created": int(time.time()) - 1800,
        "currency": "usd", "customer": None, "customer_creation": "if_required", "customer_details": None,
        "customer_email": "parent@example.com", "expires_at": int(time.time()), "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": {"account_tax_ids": None, "custom_fields": None,
                                                                 "description": None, "footer": None,
                                                                 "metadata": {}, "rendering_options": None}},
        "livemode": False, "locale": None, "metadata": {"type": "session-booking"}, "mode": "payment",
        "payment_intent": None, "payment_link": None, "payment_method_collection": "if_required",
        "payment_method_options": {}, "payment_method_types": ["card"], "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False}, "recovered_from": None, "setup_intent": None,
        "shipping_address_collection": None, "shipping_cost": None, "shipping_details": None,
        "shipping_options": [], "status": "expired", "submit_type": None, "subscription": None,
        "success_url": "http://127.0.0.1:8000/payment/success?session_id={CHECKOUT_SESSION_ID}&type=session-booking",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "ui_mode": "hosted",
        "url": None,
    }


def payment_intent_object(pi_id: str) -> dict:
    return {
        "id": pi_id, "object": "payment_intent", "amount": 6000, "amount_capturable": 0, "amount_received": 0,
        "application": None, "capture_method": "automatic", "client_secret": pi_id + "_secret_" + "x" * 24,
        "confirmation_method": "automatic", "created": int(time.time()), "currency": "usd", "customer": None,
        "description": None, "last_payment_error": None, "latest_charge": None, "livemode": False,
        "metadata": {"booking_id": "0" * 36, "type": "session-booking"}, "next_action": None,
        "payment_method": None, "payment_method_types": ["card"], "receipt_email": None, "status":
        "requires_payment_method", "setup_future_usage": None, "shipping": None, "statement_descriptor": None,
    }


PRICE = 3000  # a 30-minute session at the seeded 60.00 usd/h
COMPLETED_COLUMNS = ["id", "parent_id", "student_id", "teacher_id", "subject", "starts_at", "ends_at",
                     "price_amount", "currency", "status", "stripe_session_id", "checkout_expires_at",
                     "refunded_amount", "meeting_attempts", "created_at", "updated_at"]


def seed_pending(dbname: str, rows: int, *, teachers: int = 100, parents: int = 1000) -> list[tuple[str, str]]:
    """`rows` Pending bookings, each with its own open Checkout Session (id cs_bench_<hex>), in
    distinct half hours of `teachers` teachers from tomorrow on; [(checkout id, booking id)]."""
    from datetime import UTC, datetime, timedelta

    seed = h.seed_people(dbname, teachers=teachers, parents=parents, tag="w")
    now = datetime.now(UTC)
    base = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    expires, created = h.ts(now + timedelta(minutes=30)), h.ts(now)
    kids = [(str(p), str(seed.students[p][0])) for p in seed.parents]
    out = []

    def lines():
        for k in range(rows):
            booking, checkout = uuid.uuid4(), "cs_bench_" + secrets.token_hex(12)
            out.append((checkout, str(booking)))
            parent, student = kids[k % len(kids)]
            start = base + timedelta(minutes=30 * (k // teachers))
            yield (f"{booking}\t{parent}\t{student}\t{seed.teachers[k % teachers]}\tMathematics\t{h.ts(start)}\t"
                   f"{h.ts(start + timedelta(minutes=30))}\t{PRICE}\tusd\t0\t{checkout}\t{expires}\t0\t0\t"
                   f"{created}\t{created}")

    with psycopg.connect(h.pg_url(dbname)) as conn:
        h.bulk_copy(conn, "private_sessions", COMPLETED_COLUMNS, lines())
        conn.commit()
    h.migrate_loaded(dbname)
    with psycopg.connect(h.pg_url(dbname), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) private_sessions")
    return out


class Events:
    """Bodies built and signed on the fly from a template (a few microseconds each)."""

    def __init__(self, kind: str, ids: list[str] | None = None, bookings: list[tuple[str, str]] | None = None):
        self.kind = kind
        self.ids = ids if ids is not None else []
        self.replay = itertools.cycle(ids) if ids else None
        self.bookings = iter(bookings or [])
        if kind == "expired":
            obj, etype = checkout_object("cs_test_" + "Z" * 24), "checkout.session.expired"
        elif kind == "completed":
            obj, etype = checkout_object("cs_test_" + "Z" * 24), "checkout.session.completed"
            booking = "b" * 8 + "-" + "b" * 4 + "-" + "b" * 4 + "-" + "b" * 4 + "-" + "b" * 12
            obj.update(status="complete", payment_status="paid", amount_total=PRICE, amount_subtotal=PRICE,
                       currency="usd", client_reference_id=booking, payment_intent="pi_" + "P" * 24,
                       metadata={"booking_id": booking, "type": "session-booking"})
        else:
            obj, etype = payment_intent_object("pi_" + "Z" * 24), "payment_intent.created"
        event = {"id": "evt_" + "Y" * 24, "object": "event", "api_version": "2026-10-28.endive",
                 "created": int(time.time()), "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
                 "request": {"id": None, "idempotency_key": None}, "type": etype}
        self.template = json.dumps(event, separators=(",", ":")).encode()
        self.key = h.WEBHOOK_SECRET.encode()

    def __call__(self, i: int):
        if self.replay is not None:
            event_id = next(self.replay)
        else:
            event_id = "evt_" + secrets.token_hex(12)
            self.ids.append(event_id)
        body = self.template.replace(b"evt_" + b"Y" * 24, event_id.encode(), 1)
        if self.kind == "expired":
            body = body.replace(b"cs_test_" + b"Z" * 24, ("cs_test_" + secrets.token_hex(12)).encode(), 1)
        elif self.kind == "completed":
            checkout, booking = next(self.bookings)
            body = (body.replace(b"cs_test_" + b"Z" * 24, checkout.encode(), 1)
                    .replace(b"pi_" + b"P" * 24, ("pi_bench_" + secrets.token_hex(12)).encode(), 1)
                    .replace(b"bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb", booking.encode()))
        t = int(time.time())
        mac = hmac.new(self.key, b"%d." % t + body, hashlib.sha256).hexdigest()
        headers = f"Stripe-Signature: t={t},v1={mac}\r\nContent-Type: application/json\r\n".encode()
        return "POST", WEBHOOK, headers, body


def settled_counters(dbname: str, quiet_for: float = 11.0) -> dict:
    """pg_counters() once every backend has reported: PostgreSQL 15 backends flush their
    statistics at most once a second, and an idle one up to 10 s after its last transaction."""
    time.sleep(quiet_for)
    return pg_counters(dbname)


DUP_BATCH = 32  # one batch as the live run forms them at concurrency 32


def duplicate_evidence(dbname: str) -> tuple[list[str], str]:
    """The SQL the app sends for a batch of duplicate events (`webhooks.record_ignored_many`'s
    one statement, on PostgreSQL), and its EXPLAIN ANALYZE: DUP_BATCH ids recorded before."""
    from datetime import UTC, datetime

    from tutorbook.payments import webhooks

    url = h.sa_url(dbname)
    ids = ["evt_bench_dup_" + secrets.token_hex(6) for _ in range(DUP_BATCH)]
    values = {"ids": ids, "types": ["payment_intent.created"] * DUP_BATCH, "received_at": datetime.now(UTC)}

    def record(s):
        return s.execute(webhooks._RECORD_MANY, values).scalars().all()

    h.capture_sql(url, record, commit=True)
    inserted, sent = h.capture_sql(url, record)
    assert inserted == [], inserted
    plan = h.explain(dbname, *sent[0])
    shown = [statement.replace("%(ids)s", f"<{DUP_BATCH} ids>").replace("%(types)s", f"<{DUP_BATCH} types>")
             .replace("%(received_at)s", "now()") for statement, _ in sent]
    return shown, plan


def pg_counters(dbname: str) -> dict:
    """PostgreSQL's statistics for stripe_events and the database."""
    with psycopg.connect(h.pg_url(dbname), autocommit=True) as conn:
        t = conn.execute("SELECT seq_scan, idx_scan, n_tup_ins, n_tup_upd FROM pg_stat_user_tables "
                         "WHERE relname = 'stripe_events'").fetchone()
        i = conn.execute("SELECT idx_scan, idx_tup_read FROM pg_stat_user_indexes "
                         "WHERE indexrelname = 'pk_stripe_events'").fetchone()
        d = conn.execute("SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched "
                         "FROM pg_stat_database WHERE datname = %s", (dbname,)).fetchone()
        private = conn.execute("SELECT coalesce(sum(idx_scan), 0) + coalesce(sum(seq_scan), 0) FROM "
                               "pg_stat_user_tables WHERE relname <> 'stripe_events'").fetchone()[0]
    return {"seq_scan": t[0], "idx_scan": t[1], "n_tup_ins": t[2], "n_tup_upd": t[3], "pk_idx_scan": i[0],
            "pk_idx_tup_read": i[1], "xact_commit": d[0], "xact_rollback": d[1], "tup_inserted": d[2],
            "tup_updated": d[3], "other_tables_scans": int(private)}


def main() -> None:
    ap = h.parser(__doc__)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run")
    args = ap.parse_args()
    duration = args.duration or (3.0 if args.quick else 15.0)
    warmup = 1.0 if args.quick else 3.0
    dbname = args.db or "tutorbook_bench"
    conc = args.concurrency
    if not args.quick:
        h.wait_for_quiet()

    def attempt():
        h.fresh_database(dbname, revision=h.LOADED_AT)
        # enough Pending bookings for every completed event the run can send (at most ~2,500/s)
        pending = seed_pending(dbname, int(2500 * (duration + warmup + 1)))
        new_ignored = Events("ignored")
        plan = [("new", "new event, ignored type (payment_intent.created)", new_ignored),
                ("duplicate", "duplicate event (same ids again)", None),
                ("expired", "new checkout.session.expired, unknown session", Events("expired")),
                ("completed", "new checkout.session.completed, a Pending booking paid",
                 Events("completed", bookings=pending))]
        runs, cpus, profiles, db_cost = {}, {}, {}, {}
        count = not args.quick  # PostgreSQL's counters need ~11 s to settle after each run
        last = None
        with h.Servers(dbname, workers=args.workers, sandbox=False) as srv:
            host, port = "127.0.0.1", srv.app_port
            loadgen.run(loadgen.closed_loop(host, port, name="warm-up", concurrency=conc, duration=1.0, warmup=0.0,
                                            make=Events("ignored"), expect=(200,)))
            for key, label, events in plan:
                if events is None:  # duplicates of everything the "new" run sent
                    events = Events("ignored", ids=list(new_ignored.ids))
                before = (last or settled_counters(dbname)) if count else None
                meter = h.CpuMeter(srv)
                prof = h.Profiler(srv, f"webhooks-{key}", duration) if args.profile else None
                r = loadgen.run(loadgen.closed_loop(host, port, name=label, concurrency=conc, duration=duration,
                                                    warmup=warmup, make=events, expect=(200,),
                                                    window=h.windows(meter, prof)))
                after = last = settled_counters(dbname) if count else None
                runs[key], cpus[key] = r, meter.result
                if count:
                    db_cost[key] = {k: after[k] - before[k] for k in after}
                print(r.summary())
                print("   ", h.cpu_line(cpus[key], r.ok))
                for sample in r.samples:
                    print("    unexpected:", sample)
                if prof is not None:
                    profiles[key] = prof.summary(r.ok, CATEGORIES)
                    print(profiles[key])
        with psycopg.connect(h.pg_url(dbname)) as conn:  # every completed event confirmed its booking
            confirmed = conn.execute("SELECT count(*) FROM private_sessions b JOIN meeting_links m "
                                     "ON m.booking_id = b.id WHERE b.status = 1 AND m.url IS NOT NULL").fetchone()[0]
        db_cost["_confirmed"] = {"confirmed_with_link": confirmed, "completed_sent": runs["completed"].sent}
        print(f"    completed events sent: {runs['completed'].sent}, bookings Confirmed with a meeting link: {confirmed}")
        return (runs, cpus, profiles, db_cost), list(cpus.values())

    runs, cpus, profiles, db_cost = h.least_noisy(args.quick, attempt, tries=args.tries)

    # Divided by every request of the run, warm-up and tail included (the counters saw them all).
    confirmed = db_cost.pop("_confirmed")
    per_event = {}
    for key, cost in db_cost.items():
        n = runs[key].sent or 1
        per_event[key] = {k: round(v / n, 3) for k, v in cost.items()}
    if per_event:
        print("\nPostgreSQL counters per webhook request:")
        for key, c in per_event.items():
            print(f"  {key:10s} {c}")
    dup_sql, dup_plan = duplicate_evidence(dbname)
    print(f"\nSQL of a batch of {DUP_BATCH} duplicate events (captured from webhooks.record_ignored_many):")
    for st in dup_sql:
        print("  " + st)
    print(dup_plan)

    worst = min(r.rps for r in runs.values())
    goals = [
        h.Goal(f"webhooks.{key}", f"webhook events/s, {runs[key].name}: {runs[key].rps:,.0f}/s "
               f"(--workers {args.workers})", ">= 1,000/s", runs[key].rps / 1000)
        for key in runs
    ]
    goals.append(h.Goal("webhooks.completed_confirmed",
                        f"completed events answered: {confirmed['completed_sent']:,}; bookings Confirmed with "
                        f"their meeting link: {confirmed['confirmed_with_link']:,}", "every one",
                        confirmed["confirmed_with_link"] / max(1, confirmed["completed_sent"])))
    one_lookup = (len(dup_sql) == 1 and "Conflict Arbiter Indexes: pk_stripe_events" in dup_plan
                  and "Tuples Inserted: 0" in dup_plan and f"Conflicting Tuples: {DUP_BATCH}" in dup_plan)
    dup = per_event.get("duplicate")
    if dup is not None:  # the live server agrees: ~1 scan of the primary key, nothing written
        one_lookup = one_lookup and dup["pk_idx_scan"] <= 1.05 and dup["n_tup_ins"] < 0.005 \
            and dup["seq_scan"] == 0 and dup["other_tables_scans"] == 0
    live = (f"; live server: {dup['pk_idx_scan']:.2f} pk index scans and {dup['n_tup_ins'] + dup['n_tup_upd']:.3f} "
            "rows written per duplicate") if dup is not None else ""
    goals.append(h.Goal("webhooks.duplicate_cost",
                        f"a batch of {DUP_BATCH} duplicates is {len(dup_sql)} statement (INSERT ... SELECT FROM "
                        f"unnest ... ON CONFLICT DO NOTHING on pk_stripe_events, {DUP_BATCH} conflicts, 0 rows "
                        f"inserted){live}",
                        "one indexed lookup", 1.0 if one_lookup else 0.0))
    counters_rows = [[runs[k].name, c["pk_idx_scan"], c["seq_scan"], c["n_tup_ins"], c["n_tup_upd"],
                      c["other_tables_scans"], c["xact_commit"]] for k, c in per_event.items()]
    counters = [
        "PostgreSQL's counters per webhook request (pg_stat_user_tables / pg_stat_user_indexes / "
        "pg_stat_database deltas, read 11 s after each run so every backend has reported, divided by every "
        "request of the run, warm-up included). Transactions: one per event the app acts on, the handler's own "
        "(the async engine does not pre-ping); ignored and duplicate events share one statement per batch, "
        "without BEGIN/COMMIT, so they count a fraction of one:",
        h.md_table(["run", "pk_stripe_events index scans", "seq scans", "rows inserted", "rows updated",
                    "scans of other tables", "transactions"], counters_rows),
    ] if counters_rows else ["(PostgreSQL's counters are read in the full run only.)"]
    section = "\n\n".join([
        f"Signed events posted by the load generator (concurrency {conc}, {duration:g} s measured after "
        f"{warmup:g} s warm-up each), uvicorn --workers {args.workers}, full-size (~2 KB) event bodies. "
        "What was measured: `payment_intent.created` is a type the app records and ignores; "
        "`checkout.session.expired` names a Checkout Session no booking has (one more indexed lookup, "
        "outcome `unknown_booking`); the duplicate run re-sends the first run's event ids.",
        h.md_table(h.LOAD_HEADER, [h.load_row(r) for r in runs.values()]),
        f"Slowest kind: **{worst:,.0f}** events/s (goal ≥ 1,000/s).",
        f"What a batch of {DUP_BATCH} duplicates sends to the database (captured from the statement of "
        "`webhooks.record_ignored_many`, on the same database; on PostgreSQL the ignored and duplicate events "
        "that arrive while one INSERT is in flight share the next, `tutorbook.db.Coalescer`):",
        "```sql\n" + "\n".join(dup_sql) + "\n```",
        "```\n" + dup_plan + "\n```",
        *counters,
        "A duplicate is one probe of the primary-key index in a shared `INSERT ... SELECT FROM unnest(...) "
        "ON CONFLICT (id) DO NOTHING RETURNING id`, which finds the id and writes nothing." if one_lookup else
        "**A duplicate costs more than one indexed lookup** (see above).",
        "CPU milliseconds per event over the measured window (from /proc):",
        h.md_table(h.CPU_HEADER, [h.cpu_row(runs[k].name, cpus[k], runs[k].ok) for k in runs]),
        *(["**Noisy run:** other processes used the CPU meanwhile (last column); figures are lower than "
           "on an idle machine."] if h.noisy(*cpus.values()) else []),
        *[f"Profile of `{runs[k].name}`:\n\n{text}" for k, text in profiles.items()],
    ])
    h.report("webhooks", goals, section, quick=args.quick, write_docs=args.write_docs, profiled=args.profile,
             extra={"runs": {k: v.as_dict() for k, v in runs.items()}, "pg_per_request": per_event,
                    "cpu_ms_per_request": {k: h.cpu_per_request(cpus[k], runs[k].ok) for k in runs}})


if __name__ == "__main__":
    main()
