"""A parent's children: only their own."""

import uuid

import pytest

from tests import factories as f


def test_a_parent_adds_lists_changes_and_removes_their_children(c):
    p = f.register(c)
    kid = f.child(p["client"], full_name="Robin")
    r = p["client"].put(f"/api/Students/{kid['id']}", json={"fullName": "Robin B", "gradeLevel": "5"})
    assert r.status_code == 200 and r.json()["data"]["gradeLevel"] == "5"
    listed = p["client"].get("/api/Students").json()["data"]
    assert [s["fullName"] for s in listed] == ["Robin B"]
    assert p["client"].delete(f"/api/Students/{kid['id']}").json()["data"] is True
    assert p["client"].get("/api/Students").json()["data"] == []


def test_another_parents_child_is_403_and_an_unknown_one_404(c):
    a, b = f.parent(c), f.parent(c)
    kid = a["students"][0]
    assert b["client"].put(f"/api/Students/{kid}", json={"fullName": "Mine now"}).status_code == 403
    assert b["client"].delete(f"/api/Students/{kid}").status_code == 403
    assert [s["id"] for s in b["client"].get("/api/Students").json()["data"]] == b["students"]
    assert a["client"].get("/api/Students").json()["data"][0]["fullName"] == "Kid 0"
    assert b["client"].delete(f"/api/Students/{uuid.uuid4()}").status_code == 404


@pytest.mark.parametrize("body", [{}, {"fullName": ""}, {"fullName": "A", "secret": 1}, {"fullName": 5}])
def test_bad_student_bodies_are_422_and_write_nothing(c, body):
    p = f.register(c)
    r = p["client"].post("/api/Students", json=body)
    assert r.status_code == 422 and r.json()["success"] is False
    assert p["client"].get("/api/Students").json()["data"] == []
