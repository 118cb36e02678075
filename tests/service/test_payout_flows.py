"""A teacher's Stripe Connect onboarding and payout state (`flows/payouts.py`), without HTTP: the
Express account is made once and kept, the onboarding link comes back to the payouts page, the
state is read from Stripe on return, and a Stripe that cannot be reached is a 502 or a 504 when
onboarding but leaves the stored state shown when refreshing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.service.world import World
from tutorbook.errors import AppError, BadGateway, GatewayTimeout
from tutorbook.flows import payouts as flows
from tutorbook.payments.port import CheckoutNotFound, GatewayError
from tutorbook.payments.port import GatewayTimeout as StripeTimeout
from tutorbook.teachers import payouts
from tutorbook.teachers.payouts import NOT_CONNECTED

pytestmark = pytest.mark.service

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def links(world: World, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """The onboarding links asked of Stripe, with the URLs Stripe is to send the teacher back to."""
    asked: list[dict[str, str]] = []
    real = world.fake.create_onboarding_link

    async def create_onboarding_link(*, account_id: str, refresh_url: str, return_url: str) -> str:
        asked.append({"account_id": account_id, "refresh_url": refresh_url, "return_url": return_url})
        return await real(account_id=account_id, refresh_url=refresh_url, return_url=return_url)

    monkeypatch.setattr(world.fake, "create_onboarding_link", create_onboarding_link)
    return asked


def test_onboarding_makes_the_teachers_account_once_and_links_back_to_the_payouts_page(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    t = world.teacher()
    asked = links(world, monkeypatch)
    first = world.run(flows.onboard(world.svc, teacher=t))
    kept = world.svc.tx_sync(payouts.status, teacher_id=t.id)
    assert kept.connected and kept.account_id is not None and not kept.enabled
    assert first == f"https://connect.fake/setup/{kept.account_id}"
    assert world.fake.called("create_account") == [
        {"teacher_id": str(t.id), "email": t.email, "country": world.settings.connect_country}
    ]
    # Back on the page a second time (the link expired): the same account, no second one made.
    again = world.run(flows.onboard(world.svc, teacher=t))
    assert again == first
    assert len(world.fake.called("create_account")) == 1
    page = "http://tutorbook.test/teacher/payouts"
    expected = {"account_id": kept.account_id, "refresh_url": f"{page}?refresh=1", "return_url": f"{page}?returned=1"}
    assert asked == [expected, expected]


def test_each_teacher_onboards_to_their_own_account(world: World):
    a, b = world.teacher(), world.teacher()
    for t in (a, b):
        world.run(flows.onboard(world.svc, teacher=t))
    ids = [world.svc.tx_sync(payouts.account_id, teacher_id=t.id) for t in (a, b)]
    assert None not in ids and ids[0] != ids[1]
    assert [c["teacher_id"] for c in world.fake.called("create_account")] == [str(a.id), str(b.id)]


@pytest.mark.parametrize(
    ("error", "shown", "status"),
    [
        (GatewayError("connection reset"), BadGateway, 502),
        (StripeTimeout("read timed out"), GatewayTimeout, 504),
        (CheckoutNotFound("No such account"), BadGateway, 502),
    ],
)
def test_a_stripe_that_cannot_make_the_account_is_a_gateway_error_and_keeps_nothing(
    world: World, error: Exception, shown: type[AppError], status: int
):
    t = world.teacher()
    world.fake.fail_next("create_account", error)
    with pytest.raises(AppError) as raised:
        world.run(flows.onboard(world.svc, teacher=t))
    assert type(raised.value) is shown and raised.value.status_code == status
    assert world.svc.tx_sync(payouts.status, teacher_id=t.id) == NOT_CONNECTED
    # Stripe back: the next try makes the account.
    assert world.run(flows.onboard(world.svc, teacher=t)).startswith("https://connect.fake/setup/acct_")
    assert world.svc.tx_sync(payouts.status, teacher_id=t.id).connected


@pytest.mark.parametrize(
    ("error", "shown"),
    [(GatewayError("connection reset"), BadGateway), (StripeTimeout("read timed out"), GatewayTimeout)],
)
def test_a_link_stripe_cannot_make_is_a_gateway_error_and_the_account_made_is_kept(
    world: World, error: Exception, shown: type[AppError]
):
    t = world.teacher()
    world.fake.fail_next("create_onboarding_link", error)
    with pytest.raises(shown):
        world.run(flows.onboard(world.svc, teacher=t))
    account = world.svc.tx_sync(payouts.account_id, teacher_id=t.id)
    assert account is not None
    assert world.run(flows.onboard(world.svc, teacher=t)) == f"https://connect.fake/setup/{account}"
    assert len(world.fake.called("create_account")) == 1


def test_refreshing_a_teacher_without_an_account_asks_stripe_nothing(world: World):
    t = world.teacher()
    assert world.run(flows.refresh(world.svc, teacher=t)) == NOT_CONNECTED
    assert flows.refresh_sync(world.svc, teacher_id=t.id, now=AT) == NOT_CONNECTED
    assert world.fake.called("retrieve_account") == []


def test_returning_from_onboarding_reads_the_accounts_state_from_stripe(world: World):
    t = world.teacher()
    world.run(flows.onboard(world.svc, teacher=t))
    account = world.svc.tx_sync(payouts.account_id, teacher_id=t.id)
    assert account is not None
    world.fake.enable_account(account)  # its account.updated event never delivered
    assert not world.svc.tx_sync(payouts.status, teacher_id=t.id).enabled
    shown = world.run(flows.refresh(world.svc, teacher=t))
    assert (shown.connected, shown.account_id, shown.enabled, shown.details_submitted) == (True, account, True, True)
    assert world.svc.tx_sync(payouts.status, teacher_id=t.id) == shown
    assert world.fake.called("retrieve_account") == [{"account_id": account}]


@pytest.mark.parametrize(
    "error", [GatewayError("connection reset"), StripeTimeout("read timed out"), CheckoutNotFound("No such account")]
)
def test_refreshing_when_stripe_cannot_be_read_shows_the_stored_state(world: World, error: Exception):
    t = world.teacher()
    world.run(flows.onboard(world.svc, teacher=t))
    account = world.svc.tx_sync(payouts.account_id, teacher_id=t.id)
    assert account is not None
    world.fake.enable_account(account)
    world.fake.fail_next("retrieve_account", error)
    shown = world.run(flows.refresh(world.svc, teacher=t))
    assert (shown.connected, shown.account_id, shown.enabled) == (True, account, False)
    assert world.run(flows.refresh(world.svc, teacher=t)).enabled  # read once Stripe answers


def test_the_jobs_refresh_reads_stripe_as_of_the_time_they_give(world: World):
    t = world.teacher()
    world.run(flows.onboard(world.svc, teacher=t))
    account = world.svc.tx_sync(payouts.account_id, teacher_id=t.id)
    assert account is not None
    world.fake.enable_account(account)
    # A time before the state held since onboarding: Stripe's answer is older, so it is not kept.
    assert not flows.refresh_sync(world.svc, teacher_id=t.id, now=AT).enabled
    later = datetime(2099, 1, 1, tzinfo=UTC)
    shown = flows.refresh_sync(world.svc, teacher_id=t.id, now=later)
    assert (shown.account_id, shown.enabled) == (account, True)
    assert world.svc.tx_sync(payouts.status, teacher_id=t.id) == shown
    # Stripe down: the CLI and the jobs see the gateway's own error (they report it per teacher).
    world.fake.fail_next("retrieve_account", GatewayError("connection reset"))
    with pytest.raises(GatewayError):
        flows.refresh_sync(world.svc, teacher_id=t.id, now=later)
