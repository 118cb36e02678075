"""The failed-login throttle: growing delays per account and address, kept in the database, and no
way for a stranger to lock the owner out. On both databases.

A second app ("behind a proxy": TUTORBOOK_TRUSTED_PROXIES=127.0.0.1) shares the test database,
so requests can come from many client addresses through X-Forwarded-For."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from tests import factories as f
from tests.conftest import make_settings
from tests.support.servers import ThreadedServer, http_client
from tutorbook.accounts.models import LoginFailure
from tutorbook.app import create_app
from tutorbook.clock import utc_now
from tutorbook.config import Settings
from tutorbook.jobs import tasks

OWNER = "owner@example.com"


@pytest.fixture(scope="module")
def proxied_app(shared_db, sandbox, tmp_path_factory):
    settings = make_settings(
        shared_db.url, tmp_path_factory.mktemp("proxied"), sandbox_url=sandbox.base_url, trusted_proxies="127.0.0.1"
    )
    app = create_app(settings, db=shared_db)
    server = ThreadedServer(app).start()
    app.state.base_url = server.base_url
    yield app
    server.stop()


@pytest.fixture
def via(api, proxied_app):
    """via(address): a client of the proxied app whose requests come from `address`."""
    made = []

    def client(address: str):
        made.append(http_client(base_url=proxied_app.state.base_url, headers={"X-Forwarded-For": address}))
        return made[-1]

    yield client
    for c in made:
        c.close()


def attempt(client, password: str, email: str = OWNER) -> int:
    return client.post("/api/Auth/login", json={"email": email, "password": password}).status_code


def wait_passes(db, seconds: float) -> None:
    """The app has no clock to set: move every recorded failure `seconds` into the past."""
    with db.session_scope() as s:
        for row in s.scalars(sa.select(LoginFailure)):
            row.last_failed_at -= timedelta(seconds=seconds)


def test_a_stranger_guessing_elsewhere_cannot_lock_the_owner_out(c, via):
    f.register(c, email=OWNER)
    stranger = via("203.0.113.5")
    codes = [attempt(stranger, f"guess-{i}") for i in range(20)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    assert attempt(stranger, f.PASSWORD) == 429  # the right password from the guesser's address waits too
    assert attempt(via("198.51.100.7"), f.PASSWORD) == 200  # the owner, elsewhere, is not held back


def test_many_guessing_addresses_slow_each_other_but_not_the_owner(c, via):
    f.register(c, email=OWNER)
    for n in range(2):  # 10 failures on the account: its budget is spent
        assert [attempt(via(f"203.0.113.{n}"), f"guess-{n}-{i}") for i in range(5)] == [401] * 5
    botnet = via("192.0.2.50")
    assert attempt(botnet, "one-more-guess") == 401  # a new address gets one guess...
    r = botnet.post("/api/Auth/login", json={"email": OWNER, "password": "and-another"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 15  # ...then waits the account's delay
    owner = via("198.51.100.7")
    assert attempt(owner, f.PASSWORD) == 200  # the owner's address had not failed: let in


def test_delays_grow_with_each_further_failure(api, c, via):
    f.register(c, email=OWNER)
    client = via("203.0.113.9")
    assert [attempt(client, f"guess-{i}") for i in range(5)] == [401] * 5
    waits = []
    for i in range(3):
        r = client.post("/api/Auth/login", json={"email": OWNER, "password": "again"})
        assert r.status_code == 429 and r.json()["success"] is False
        waits.append(int(r.headers["Retry-After"]))
        wait_passes(api.state.db, waits[-1])
        assert attempt(client, f"late-guess-{i}") == 401
    assert waits[0] >= 15 and waits[1] >= 2 * waits[0] - 1 and waits[2] >= 2 * waits[1] - 1, waits
    wait_passes(api.state.db, 10 * waits[-1])
    assert attempt(client, f.PASSWORD) == 200
    assert attempt(client, "a-typo") == 401  # the right password cleaned this address's slate


def test_one_address_trying_many_accounts_is_slowed_down(c, via):
    f.register(c, email=OWNER)
    sprayer = via("203.0.113.77")
    codes = [attempt(sprayer, "Summer2026!", email=f"user{i}@example.com") for i in range(50)]
    assert codes == [401] * 50
    assert attempt(sprayer, "Summer2026!", email="user50@example.com") == 429
    assert attempt(sprayer, f.PASSWORD) == 429  # a right password from that address waits too
    assert attempt(via("198.51.100.7"), f.PASSWORD) == 200


def test_a_spoofed_forwarded_for_is_not_believed(c, via, api):
    f.register(c, email=OWNER)
    # Behind the proxy: only the address the proxy appended counts, not what the client wrote before it.
    spoofer = via("198.51.100.7, 203.0.113.5")
    assert [attempt(spoofer, f"guess-{i}") for i in range(6)] == [401] * 5 + [429]
    assert attempt(via("198.51.100.7"), f.PASSWORD) == 200
    # Without trusted proxies (the main test app) X-Forwarded-For is ignored altogether.
    direct = [
        c.post(
            "/api/Auth/login", json={"email": OWNER, "password": f"g-{i}"}, headers={"X-Forwarded-For": f"192.0.2.{i}"}
        ).status_code
        for i in range(6)
    ]
    assert direct == [401] * 5 + [429]


def test_replicas_share_the_throttle_through_the_database(c, proxied_app):
    f.register(c, email=OWNER)
    assert [attempt(c, f"guess-{i}") for i in range(5)] == [401] * 5
    # The other app (a second replica) sees the same client address without a forwarded header.
    with http_client(base_url=proxied_app.state.base_url) as replica:
        assert attempt(replica, f.PASSWORD) == 429


def test_the_purge_job_forgets_old_failures(api, c):
    f.register(c, email=OWNER)
    assert [attempt(c, f"guess-{i}") for i in range(3)] == [401] * 3
    tasks.purge(api.state.services, now=utc_now())
    with api.state.db.session_scope() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(LoginFailure)) == 3  # still recent
    tasks.purge(api.state.services, now=utc_now() + timedelta(seconds=api.state.settings.login_window_seconds + 1))
    with api.state.db.session_scope() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(LoginFailure)) == 0


def test_trusted_proxies_are_ip_addresses_or_networks():
    settings = Settings(trusted_proxies="10.0.0.0/8, 127.0.0.1 ,::1")
    assert settings.trusted_proxies == ["10.0.0.0/8", "127.0.0.1", "::1"]
    with pytest.raises(ValidationError, match="not an IP address"):
        Settings(trusted_proxies="proxy.internal")
