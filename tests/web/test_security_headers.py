"""Security headers: nosniff everywhere, no-store where tokens travel, a CSP on the pages."""

from __future__ import annotations

import re

from tests import factories as f


def csp(r) -> dict[str, str]:
    policy = r.headers["content-security-policy"]
    return {d.split()[0]: d.partition(" ")[2] for d in (p.strip() for p in policy.split(";")) if d}


def test_api_answers_are_nosniff_and_token_answers_are_not_stored(c):
    listed = c.get("/api/Teachers")
    assert listed.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in listed.headers
    r = c.post(
        "/api/Auth/register",
        json={"email": "hdr@example.com", "password": f.PASSWORD, "fullName": "H", "role": "Parent"},
    )
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    r = c.post("/api/Auth/login", json={"email": "hdr@example.com", "password": f.PASSWORD})
    assert r.json()["data"]["token"] and r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert c.post("/api/Auth/login", json={"email": "hdr@example.com", "password": "wrong-password-1"}).headers[
        "cache-control"
    ] == "no-store"


def test_pages_send_a_csp_without_inline_script_and_may_not_be_framed(web):
    for path in ("/", "/login", "/register", "/no-such-page"):
        r = web.get(path)
        policy = csp(r)
        assert policy["frame-ancestors"] == "'none'" and policy["script-src"] == "'self'", path
        assert "unsafe-inline" not in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "same-origin" and r.headers["x-content-type-options"] == "nosniff"
    page = web.get("/register").text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    js = web.get("/static/timezone.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "resolvedOptions().timeZone" in js.text


def test_the_login_page_sends_its_token_cookie_with_no_store(web, parent):
    r = web.login(parent["email"])
    assert "tutorbook_token=" in r.headers["set-cookie"] and r.headers["cache-control"] == "no-store"
