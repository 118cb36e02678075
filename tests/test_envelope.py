"""Every response, errors included, is {success, message, data}."""

import pytest


@pytest.mark.parametrize(
    "method,path,kwargs,status",
    [
        ("GET", "/api/Auth/me", {}, 401),
        ("GET", "/api/Nope", {}, 404),
        ("DELETE", "/api/Auth/login", {}, 405),
        ("POST", "/api/Auth/login", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
        ("POST", "/api/Auth/login", {"json": {"email": 5}}, 422),
        ("GET", "/api/Teachers/not-a-uuid", {}, 422),
        ("GET", "/api/Teachers/00000000-0000-0000-0000-000000000000", {}, 404),
    ],
)
def test_errors_come_in_the_envelope(c, method, path, kwargs, status):
    r = c.request(method, path, **kwargs)
    assert r.status_code == status
    body = r.json()
    assert set(body) == {"success", "message", "data"} and body["success"] is False and body["message"]


def test_validation_errors_name_the_fields(c):
    r = c.post("/api/Auth/register", json={"email": "not-an-email", "password": "x", "role": "Parent"})
    fields = {d["field"] for d in r.json()["data"]}
    assert {"email", "fullName"} <= fields


def test_an_unexpected_crash_is_a_500_in_the_envelope(api, c):
    @api.get("/__boom")
    def boom():
        raise RuntimeError("secret internals")

    r = c.get("/__boom")
    assert r.status_code == 500
    assert r.json() == {"success": False, "message": "Internal server error", "data": None}


def test_health_and_openapi_answer(c):
    assert c.get("/health").json()["success"] is True
    assert c.get("/health/ready").json()["data"] == "ready"
    assert "/api/Sessions/cancel-payment/{stripeSessionId}" in c.get("/openapi.json").json()["paths"]
    assert c.get("/health").headers["X-Request-ID"]
