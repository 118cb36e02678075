"""The console's booking search by name or part of an email (parents, teachers, children), and
a search exported as CSV."""

from __future__ import annotations

import csv
import io
import uuid

from tests import factories as f
from tests.jobs.helpers import admin_client, confirmed
from tests.web.helpers import WebClient, assert_clean, text_of


def named_parent(c, *, name: str, child: str) -> dict:
    tag = uuid.uuid4().hex[:6]
    p = f.register(c, role="Parent", full_name=name, email=f"{name.split()[0].lower()}.{tag}@school.example")
    p["students"] = [f.child(p["client"], full_name=child)["id"]]
    p["tag"] = tag
    return p


def found(page, booking_id: str) -> bool:
    return f"/admin/bookings/{booking_id}" in page.text


def test_bookings_are_found_by_a_name_or_part_of_an_email(api, c, admin_web):
    tag = uuid.uuid4().hex[:6]
    marta = named_parent(c, name=f"Marta Quill{tag}", child=f"Otto Quill{tag}")
    other = named_parent(c, name=f"Ben Other{tag}", child=f"Ida Other{tag}")
    mine, theirs = confirmed(c, parent=marta)["b"], confirmed(c, parent=other, hour=12)["b"]
    for q in (f"quill{tag}", f"MARTA QUILL{tag}", f"marta.{marta['tag']}@school", f"Otto Quill{tag}"):
        page = admin_web.get("/admin/bookings", params={"q": q})
        assert page.status_code == 200 and found(page, mine["id"]) and not found(page, theirs["id"]), q
        assert_clean(page)
    page = admin_web.get("/admin/bookings", params={"parent": f"Quill{tag}"})
    assert found(page, mine["id"]) and not found(page, theirs["id"])
    # Both parents share the tag: a parent filter matching several finds all their bookings.
    page = admin_web.get("/admin/bookings", params={"parent": tag})
    assert found(page, mine["id"]) and found(page, theirs["id"])
    page = admin_web.get("/admin/bookings", params={"q": f"nobody-called-this-{tag}"})
    assert page.status_code == 200 and "No bookings match" in text_of(page)
    r = admin_web.get("/admin/bookings", params={"teacher": f"no such teacher {tag}"})
    assert r.status_code == 422 and "No teacher whose name or email contains" in text_of(r)


def test_like_wildcards_in_a_search_are_taken_literally(api, c, admin_web):
    confirmed(c)
    for q in ("%", "_", "a%b", "\\"):
        page = admin_web.get("/admin/bookings", params={"q": q})
        assert page.status_code == 200 and "No bookings match" in text_of(page), q


def test_the_api_search_takes_a_name_too(api, c):
    tag = uuid.uuid4().hex[:6]
    p = named_parent(c, name=f"Api Person{tag}", child="Kid")
    b = confirmed(c, parent=p)["b"]
    with admin_client(api, c) as admin:
        items = admin.get("/api/Admin/bookings", params={"q": f"person{tag}"}).json()["data"]["items"]
    assert [i["id"] for i in items] == [b["id"]]


def test_a_search_is_exported_as_csv_with_every_match(api, c, admin_web):
    tag = uuid.uuid4().hex[:6]
    p = named_parent(c, name=f"Csv Parent{tag}", child=f"Csv Kid{tag}")
    t = f.teacher(c)
    made = [confirmed(c, parent=p, teacher=t, hour=h)["b"] for h in (9, 11, 13)]
    page = admin_web.get("/admin/bookings", params={"q": f"parent{tag}"})
    assert f'href="/admin/bookings.csv?q=parent{tag}"' in page.text
    r = admin_web.get("/admin/bookings.csv", params={"q": f"parent{tag}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(row["id"] for row in rows) == sorted(b["id"] for b in made)
    assert {row["child"] for row in rows} == {f"Csv Kid{tag}"} and {row["status"] for row in rows} == {"Confirmed"}
    assert {row["price"] for row in rows} == {"60.00"} and {row["currency"] for row in rows} == {"USD"}
    assert admin_web.get("/admin/bookings.csv", params={"from": "nonsense"}).status_code == 422
    parent_web = WebClient(api.state.base_url)
    parent_web.login(p["email"])
    assert parent_web.get("/admin/bookings.csv").status_code == 403
    parent_web.close()
