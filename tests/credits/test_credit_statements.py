"""What a booking paid with a credit costs the database (issue #28's throughput goal,
docs/PERFORMANCE.md section 15): its statements are counted and pinned, so the hot path cannot
grow a statement unnoticed; and the answer, built from what was written (no read back), is what
the database holds."""

from __future__ import annotations

import sqlalchemy as sa

from tests import factories as f
from tests.credits import helpers as h

# The statements of one credit booking, by database: the user, the student, the teacher (locked
# on PostgreSQL), hours / time off / calendars, the overlap check, the wallet's lots (locked) and
# their sums, the booking with its two history rows, its payment and its terms (PostgreSQL: ONE
# statement; SQLite: four), the teachers' schedule version, the draw, the two confirmation emails
# (PostgreSQL: with the mail workers' wake-up), the meeting link; on SQLite besides, each of the
# request's two transactions (the user's read, the booking) opens with BEGIN IMMEDIATE. Before the
# credit path was cut down (section 15): 23 on PostgreSQL.
EXPECTED = {"postgresql": 5, "sqlite": 14}


def statements_of(api, request) -> tuple[int, list[str]]:
    """The SQL statements the app sent to its database while answering `request()` (any engine
    on that database: the async one on PostgreSQL), and the response."""
    app_db = api.state.db.engine.url.database
    sent: list[str] = []

    def counted(conn, _cursor, statement, *_args):
        if conn.engine.url.database == app_db:
            sent.append(" ".join(statement.split()))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", counted)
    try:
        response = request()
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", counted)
    return response, sent


def test_a_credit_booking_sends_a_pinned_number_of_statements(api, c):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    h.buy_and_pay(p, h.package(t, lessons=3, price=15000))
    assert h.book_with_credit(p, t, days=3).status_code == 201  # the path warm (statements built once)
    response, sent = statements_of(api, lambda: h.book_with_credit(p, t, days=4))
    assert response.status_code == 201, response.text
    dialect = api.state.db.engine.dialect.name
    assert len(sent) == EXPECTED[dialect], "\n".join(s[:90] for s in sent)
    # Nothing read back: no booking re-read with its link (or its parties), no users' addresses.
    assert not [s for s in sent if s.startswith("SELECT") and ("meeting_links" in s or "reminders_opt_out" in s)]


def test_the_answer_built_from_what_was_written_is_what_the_database_holds(api, c):
    t, p = f.teacher(c, rate=6000), f.parent(c)
    h.buy_and_pay(p, h.package(t, lessons=2, price=10000))
    answered = h.book_with_credit(p, t, days=3).json()["data"]
    stored = p["client"].get(f"/api/Sessions/{answered['id']}")
    assert stored.status_code == 200, stored.text
    assert stored.json()["data"] == answered
    assert answered["status"] == 1 and answered["meetingUrl"] and answered["checkoutUrl"] is None
    history = p["client"].get(f"/api/Sessions/{answered['id']}/history")
    assert history.status_code == 200, history.text
    moves = [(e["fromStatus"], e["toStatus"], e["reason"], e["actor"]) for e in history.json()["data"]]
    actor = f"user:{p['user']['id']}"
    assert moves == [(None, 0, "booked", actor), (0, 1, "paid", actor)]  # the state machine's two moves
