"""The sandbox's store answers a list page from an index, whatever the filters and the cursor:
the expire job lists 1,000 pages of 100 Checkout Sessions from 100,000 (issue #18)."""

from __future__ import annotations

import sqlite3

import pytest

from stripe_sandbox.store import Filter, Store

SESSION = "checkout.session"


class Recording:
    """A connection that remembers each statement it runs, for EXPLAIN QUERY PLAN."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn, self.statements = conn, []

    def execute(self, sql, args=()):
        self.statements.append((sql, list(args)))
        return self.conn.execute(sql, args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "sandbox.sqlite3"))
    for k in range(30):
        status = ("open", "complete", "expired")[k % 3]
        store.insert({"id": f"cs_{k}", "object": SESSION, "created": 1_000 + k, "status": status, "expires_at": 9_999})
    yield store
    store.close()


def plan(store: Store, run) -> str:
    recording = Recording(store._conn())
    store._local.conn = recording
    try:
        run()
    finally:
        store._local.conn = recording.conn
    sql, args = recording.statements[-1]
    return " / ".join(row[3] for row in recording.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


@pytest.mark.parametrize(("cursor", "page"), [(None, ["cs_26", "cs_23"]), ("cs_26", ["cs_23", "cs_20"])])
def test_a_page_of_one_status_in_a_created_window_is_read_from_the_status_index(store, cursor, page):
    filters = [Filter("status", "=", "expired"), Filter("created", ">=", 1_005), Filter("created", "<=", 1_028)]
    found = plan(store, lambda: store.page(SESSION, filters, 2, starting_after=cursor))
    assert "objects_status_created" in found and "TEMP B-TREE" not in found, found
    items, more = store.page(SESSION, filters, 2, starting_after=cursor)
    assert [i["id"] for i in items] == page and more


@pytest.mark.parametrize("cursor", [None, "cs_20"])
def test_a_page_of_every_status_is_read_in_created_order_from_the_type_index(store, cursor):
    found = plan(store, lambda: store.page(SESSION, [Filter("created", ">=", 1_010)], 5, starting_after=cursor))
    assert "objects_type_created" in found and "TEMP B-TREE" not in found, found


def test_the_open_sessions_due_to_expire_are_found_from_the_expiry_index(store):
    due = [Filter("status", "=", "open"), Filter("expires_at", "<=", 5_000)]
    found = plan(store, lambda: store.ids_where(SESSION, due))
    assert "objects_status_expiry" in found, found


def test_a_file_from_before_webhook_endpoints_gets_the_per_endpoint_deliveries_table(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE deliveries (event_id TEXT PRIMARY KEY, attempts INTEGER NOT NULL DEFAULT 0, "
        "delivered INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_error TEXT, "
        "next_attempt_at REAL NOT NULL, delivered_at REAL)"
    )
    old.execute("INSERT INTO deliveries (event_id, next_attempt_at) VALUES ('evt_1', 0)")
    old.commit()
    old.close()
    store = Store(path)
    try:
        with store.transaction():
            store.queue_delivery("evt_1", "we_a", 0)
            store.queue_delivery("evt_1", "we_b", 0)
        assert sorted(d.endpoint_id for d in store.deliveries_of("evt_1")) == ["we_a", "we_b"]
    finally:
        store.close()
