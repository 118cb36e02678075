"""Weekly hours without several saves: a row for every day or Monday to Friday, "Copy to every
day", and more empty rows without saving."""

from __future__ import annotations

from tests import factories as f
from tests.web.helpers import WebClient, assert_clean, text_of


def logged_in_teacher(api, c):
    t = f.teacher(c, windows=[{"weekday": 0, "start": "09:00", "end": "12:00"}])
    web = WebClient(api.state.base_url)
    web.login(t["email"])
    web.get("/teacher/hours")
    return t, web


def windows(t) -> list[dict]:
    return t["client"].get("/api/Teachers/me/availability").json()["data"]


def test_copy_to_every_day_and_every_day_and_weekdays_rows_save_at_once(api, c):
    t, web = logged_in_teacher(api, c)
    r = web.post(
        "/teacher/hours",
        {
            "rows": "3",
            "weekday_0": "0", "start_0": "09:00", "end_0": "12:00", "copy_0": "1",
            "weekday_1": "weekdays", "start_1": "14:00", "end_1": "16:00",
            "weekday_2": "all", "start_2": "11:00", "end_2": "13:00",
        },
    )  # fmt: skip
    assert r.status_code == 303
    got = windows(t)
    # every day 09:00-13:00 (the copy and the every-day row merged), Monday to Friday 14:00-16:00 too
    every_day = [{"weekday": d, "start": "09:00", "end": "13:00"} for d in range(7)]
    assert [w for w in got if w["start"] == "09:00"] == every_day
    assert [w["weekday"] for w in got if w["start"] == "14:00"] == [0, 1, 2, 3, 4]
    assert len(got) == 12
    web.close()


def test_more_empty_rows_keep_what_was_typed_and_save_nothing(api, c):
    t, web = logged_in_teacher(api, c)
    page = web.post(
        "/teacher/hours",
        {"rows": "2", "weekday_0": "0", "start_0": "09:00", "end_0": "12:00",
         "weekday_1": "3", "start_1": "15:00", "end_1": "17:00", "action": "more"},
    )  # fmt: skip
    assert page.status_code == 200 and "Nothing is saved until you press" in text_of(page)
    assert 'name="rows" value="7"' in page.text and 'value="15:00"' in page.text
    assert windows(t) == [{"weekday": 0, "start": "09:00", "end": "12:00"}]
    assert_clean(page)
    web.close()
