"""/health/live and /health/ready for a load balancer; /health as before."""

import sqlalchemy as sa

from tutorbook.db import Database


def test_live_answers_without_the_database(api, c):
    r = c.get("/health/live")
    assert r.status_code == 200
    assert r.json() == {"success": True, "message": "OK", "data": "alive"}
    assert c.get("/health").json()["data"] == "alive"  # the existing check, unchanged


def test_ready_when_the_database_answers_at_head(api, c):
    r = c.get("/health/ready")
    assert r.status_code == 200 and r.json()["data"] == "ready"


def test_not_ready_when_the_schema_is_behind_the_code(api, c):
    with api.state.db.engine.begin() as conn:
        (at,) = conn.execute(sa.text("SELECT version_num FROM alembic_version")).one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0013_teacher_calendars'"))
    try:
        r = c.get("/health/ready")
        assert r.status_code == 503
        body = r.json()
        assert body["success"] is False and body["data"] is None
        assert "0013_teacher_calendars" in body["message"] and at in body["message"]
        assert c.get("/health/live").status_code == 200  # alive, only out of rotation
    finally:
        with api.state.db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :at"), {"at": at})
    assert c.get("/health/ready").status_code == 200


def test_not_ready_when_the_database_is_away(api, c, monkeypatch):
    away = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setattr(api.state.services.db, "engine", away.engine)
    r = c.get("/health/ready")
    assert r.status_code == 503 and r.json() == {"success": False, "message": "Database unavailable", "data": None}
    assert c.get("/health/live").status_code == 200
