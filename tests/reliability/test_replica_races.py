"""Two app processes sharing one PostgreSQL database, as replicas would: 50 concurrent bookings of
one slot, split across both, let exactly one win, round after round. A control run with the
guard removed (no teacher lock, no exclusion constraint) shows the race is real."""

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import pytest
import sqlalchemy as sa

from tests import factories as f
from tests.conftest import pg_database
from tests.support import payments as pay
from tests.support.processes import AppProcess, app_env
from tests.support.servers import http_client
from tutorbook.migrate import upgrade

ROUNDS = int(os.environ.get("TUTORBOOK_RACE_ROUNDS", "20"))
CONCURRENCY = 50

pytestmark = pytest.mark.skipif(
    "postgresql" not in os.environ.get("TUTORBOOK_TEST_DATABASES", "sqlite,postgresql"),
    reason="PostgreSQL replicas; run with TUTORBOOK_TEST_DATABASES including postgresql",
)


def replicas(url, sandbox, tmp_path, **extra):
    env = app_env(database_url=url, sandbox_url=sandbox.base_url, **extra)
    return [AppProcess(env=env, log_dir=tmp_path).start() for _ in range(2)]


def race(servers, *, rounds: int) -> list[int]:
    """Winners per round: 50 parents book one slot at once through alternating replicas."""
    c = http_client(base_url=servers[0].base_url, timeout=60)
    t = f.teacher(c)
    parents = [f.parent(c) for _ in range(CONCURRENCY)]
    for i, p in enumerate(parents):
        p["client"] = http_client(
            base_url=servers[i % 2].base_url,
            timeout=60,
            headers=p["client"].headers,
            limits=httpx.Limits(max_connections=2),
        )
    winners = []
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for r in range(rounds):
            start = f.slot(days=2 + r, hour=10)
            codes = list(pool.map(lambda p, start=start: f.book(p, t, starts_at=start).status_code, parents))
            assert set(codes) <= {201, 409}, codes
            winners.append(codes.count(201))
    return winners


def test_fifty_concurrent_bookings_across_two_replicas_let_exactly_one_win(sandbox, tmp_path):
    url = pg_database("tutorbook_replicas")
    upgrade(url)
    servers = replicas(url, sandbox, tmp_path)
    try:
        winners = race(servers, rounds=ROUNDS)
    finally:
        for s in servers:
            s.stop()
    print(f"\nreplica race: {ROUNDS} rounds x {CONCURRENCY} concurrent bookings, winners per round {winners}")
    assert winners == [1] * ROUNDS
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        holding = conn.execute(sa.text("SELECT count(*) FROM private_sessions WHERE status IN (0,1)")).scalar()
    engine.dispose()
    assert holding == ROUNDS


def test_control_without_the_guard_the_race_is_real(sandbox, tmp_path):
    url = pg_database("tutorbook_replicas_unguarded")
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE private_sessions DROP CONSTRAINT ex_private_sessions_teacher_overlap"))
    engine.dispose()
    servers = replicas(url, sandbox, tmp_path, booking_guard="false")
    try:
        winners = race(servers, rounds=3)
    finally:
        for s in servers:
            s.stop()
    print(f"\ncontrol (no lock, no exclusion constraint): winners per round {winners}")
    assert max(winners) > 1, f"no double booking happened without the guard: {winners}"


@pytest.mark.parametrize("lock", ["true", "false"])
def test_reschedules_racing_bookings_and_each_other_across_two_replicas_let_exactly_one_win(sandbox, tmp_path, lock):
    """Round after round, on two app processes: a paid booking is moved to a time that a new
    booking (through the other replica) and another paid booking's move both want at once. Without
    the teacher lock, the exclusion constraint alone still lets exactly one win (the others 409)."""
    url = pg_database("tutorbook_replicas_reschedule")
    upgrade(url)
    servers = replicas(url, sandbox, tmp_path, booking_guard=lock)
    try:
        c = http_client(base_url=servers[0].base_url, timeout=60)
        t = f.teacher(c)
        movers = []
        for hour in (8, 12):
            p = f.parent(c)
            b = f.book(p, t, starts_at=f.slot(days=2, hour=hour)).json()["data"]
            assert pay.pay(b["checkoutUrl"]).status_code == 303
            assert (
                p["client"].post(f"/api/Sessions/confirm-payment/{b['stripeSessionId']}").json()["data"]["status"] == 1
            )
            movers.append((p, b))
        newcomer = f.parent(c)
        clients = [
            http_client(base_url=servers[i % 2].base_url, timeout=60, headers=who["client"].headers)
            for i, who in enumerate([movers[0][0], movers[1][0], newcomer])
        ]
        winners = []
        with ThreadPoolExecutor(3) as pool:
            for r in range(ROUNDS):
                target = f.slot(days=3 + r, hour=16)
                calls = [
                    partial(
                        clients[0].post, f"/api/Sessions/{movers[0][1]['id']}/reschedule", json={"startsAt": target}
                    ),
                    partial(
                        clients[1].post, f"/api/Sessions/{movers[1][1]['id']}/reschedule", json={"startsAt": target}
                    ),
                    partial(f.book, {**newcomer, "client": clients[2]}, t, starts_at=target),
                ]
                codes = [fut.result().status_code for fut in [pool.submit(call) for call in calls]]
                assert set(codes) <= {200, 201, 409}, codes
                winners.append(sum(code in (200, 201) for code in codes))
                # The movers go back to their own times (freed by a winner's move, free again now).
                for (_, b), client in zip(movers, clients[:2], strict=True):
                    client.post(f"/api/Sessions/{b['id']}/reschedule", json={"startsAt": b["startsAt"]})
    finally:
        for s in servers:
            s.stop()
    print(f"\nreplica reschedule race: {ROUNDS} rounds, winners per round {winners}")
    assert winners == [1] * ROUNDS
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        overlaps = conn.execute(
            sa.text(
                "SELECT count(*) FROM private_sessions a JOIN private_sessions b ON a.id < b.id "
                "AND a.teacher_id = b.teacher_id AND a.status IN (0,1) AND b.status IN (0,1) "
                "AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at"
            )
        ).scalar()
    engine.dispose()
    assert overlaps == 0
