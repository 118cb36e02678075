"""An operator moves a session for the parent or the teacher, and the booking's history on the
console shows a reschedule's old and new time."""

from __future__ import annotations

import re

from tests import factories as f
from tests.bookings.test_reschedule import confirmed
from tests.support import payments as pay
from tests.web.helpers import assert_clean, text_of
from tests.web.test_admin_console import history


def test_an_admin_moves_a_session_on_someones_behalf_and_the_history_shows_both_times(api, c, admin, admin_web):
    t, p, b = confirmed(c, days=3)
    page = admin_web.get(f"/admin/bookings/{b['id']}")
    assert f'href="/bookings/{b["id"]}/reschedule"' in page.text
    r = admin_web.get(f"/bookings/{b['id']}/reschedule", params={"week": 1})
    assert r.status_code == 200 and "You are moving it for them" in text_of(r)
    assert_clean(r)
    target = f.slot(days=9, hour=11)
    assert target in re.findall(r'name="starts_at" value="([^"]+)"', r.text)
    r = admin_web.post(f"/bookings/{b['id']}/reschedule", {"starts_at": target, "week": "1"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/bookings/{b['id']}"
    row = pay.booking_row(api.state.db, b["id"])
    assert row.starts_at.isoformat().replace("+00:00", "Z") == target and row.reschedule_count == 0
    last = history(api, b["id"])[-1]
    assert last.reason == "rescheduled" and last.actor == f"user:{admin['id']}"
    page = admin_web.get(r.headers["location"])
    text = text_of(page)
    assert "Session moved to" in text
    moved = re.search(r'Moved from <time datetime="([^"]+)">.+?</time> to <time datetime="([^"]+)">', page.text)
    assert moved and (moved.group(1), moved.group(2)) == (b["startsAt"], target), page.text
    assert_clean(page)


def test_a_teachers_move_shows_its_old_and_new_time_in_the_console_history(api, c, admin_web):
    t, p, b = confirmed(c, days=3)
    target = f.slot(days=9, hour=11)
    assert t["client"].post(f"/api/Sessions/{b['id']}/reschedule", json={"startsAt": target}).status_code == 200
    page = admin_web.get(f"/admin/bookings/{b['id']}")
    assert f'datetime="{b["startsAt"]}"' in page.text and f'datetime="{target}"' in page.text
    assert "Moved from" in text_of(page)
