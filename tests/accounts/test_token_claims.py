"""A token's verified claims are remembered per process (issue #33), which changes nothing a
caller can see: an expiry passing while remembered is still "expired", another secret still
refuses the token, a refused token is never remembered, and a disabled user or a password reset
still ends the token at once (the user's row is read on every request)."""

import time
import uuid

import jwt
import pytest

from tests import factories as f
from tests.conftest import make_settings
from tutorbook.accounts import security
from tutorbook.accounts.service import set_disabled
from tutorbook.clock import utc_now
from tutorbook.errors import Unauthorized


def _settings(tmp_path, secret):
    return make_settings("sqlite://", tmp_path, jwt_secret=secret)


def _token(secret, *, exp):
    return jwt.encode({"sub": str(uuid.uuid4()), "role": "Parent", "tv": 0, "exp": exp}, secret, algorithm="HS256")


def test_a_remembered_token_still_expires_on_time(tmp_path, monkeypatch):
    settings = _settings(tmp_path, "first-secret-" + "x" * 32)
    token = _token(settings.jwt_secret, exp=int(time.time()) + 60)
    first = security.read_token(settings=settings, token=token)
    assert security.read_token(settings=settings, token=token) == first  # remembered
    later = time.time() + 61
    monkeypatch.setattr(security.time, "time", lambda: later)
    monkeypatch.setattr(jwt.api_jwt, "datetime", _Clock(later))
    with pytest.raises(Unauthorized, match="expired"):
        security.read_token(settings=settings, token=token)


def test_a_token_remembered_under_one_secret_is_refused_under_another(tmp_path):
    one, other = _settings(tmp_path, "one-secret-" + "x" * 32), _settings(tmp_path, "another-secret-" + "x" * 32)
    token = _token(one.jwt_secret, exp=int(time.time()) + 60)
    assert security.read_token(settings=one, token=token)["role"] == "Parent"
    with pytest.raises(Unauthorized, match="Invalid token"):
        security.read_token(settings=other, token=token)


def test_a_refused_token_is_not_remembered(tmp_path):
    settings = _settings(tmp_path, "third-secret-" + "x" * 32)
    tampered = _token(settings.jwt_secret, exp=int(time.time()) + 60)[:-4] + "AAAA"
    for _ in range(2):
        with pytest.raises(Unauthorized):
            security.read_token(settings=settings, token=tampered)
    assert not any(token == tampered for _, token in security._VERIFIED)


def test_the_memory_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(security, "VERIFIED_MAX", 3)
    monkeypatch.setattr(security, "_VERIFIED", {})
    settings = _settings(tmp_path, "fourth-secret-" + "x" * 32)
    for _ in range(7):
        security.read_token(settings=settings, token=_token(settings.jwt_secret, exp=int(time.time()) + 60))
        assert len(security._VERIFIED) <= 3


def test_a_disabled_account_still_ends_a_remembered_token_at_once(c, db, admin):
    p = f.parent(c)
    assert p["client"].get("/api/Auth/me").status_code == 200  # its claims remembered now
    assert p["client"].get("/api/Auth/me").status_code == 200
    with db.session_scope() as session:
        set_disabled(session, by=uuid.UUID(str(admin["id"])), user_id=uuid.UUID(p["user"]["id"]),
                     disabled=True, now=utc_now())  # fmt: skip
    r = p["client"].get("/api/Auth/me")
    assert r.status_code == 401 and r.json()["message"] == "This account is disabled"


class _Clock:
    """PyJWT's `datetime`, reading the moved clock (its own expiry check, past the memory)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def now(self, tz=None):
        from datetime import datetime

        return datetime.fromtimestamp(self.at, tz)
