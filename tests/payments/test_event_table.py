"""The one table of the Stripe events Tutorbook acts on: every type has a shape, a handler and
an endpoint, and what is derived from it (HANDLED, the endpoints' subscriptions) agrees."""

import pytest

from tutorbook.payments import webhooks
from tutorbook.payments.schemas import CheckoutObject, Shape
from tutorbook.payments.webhooks import CONNECT_EVENTS, HANDLED, HANDLERS, PLATFORM_EVENTS, EventType

# The wire values Stripe sends and the endpoints subscribe to: they do not change.
TYPES = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "account.updated",
    "transfer.created",
    "transfer.updated",
    "transfer.reversed",
    "application_fee.created",
    "application_fee.refunded",
}


def test_every_event_type_has_a_row_and_every_row_an_event_type():
    assert set(HANDLERS) == set(EventType)
    assert {str(t) for t in HANDLED} == TYPES


@pytest.mark.parametrize("type_", list(EventType))
def test_every_handled_type_has_a_shape_and_a_handler(type_):
    handling = HANDLERS[type_]
    assert issubclass(handling.shape, Shape)
    assert callable(handling.handler)


def test_every_checkout_event_is_read_as_a_checkout():
    assert {t for t, h in HANDLERS.items() if h.shape is CheckoutObject} == {
        t for t in EventType if t.startswith("checkout.session.")
    }


def test_the_two_endpoints_subscribe_to_every_handled_type_once():
    assert CONNECT_EVENTS | PLATFORM_EVENTS == HANDLED
    assert not CONNECT_EVENTS & PLATFORM_EVENTS
    assert CONNECT_EVENTS == {"account.updated"}


@pytest.mark.parametrize("type_", sorted(TYPES))
def test_a_handled_type_is_acted_on_by_its_wire_value(type_):
    assert webhooks.acts_on({"id": "evt_1", "type": type_})


@pytest.mark.parametrize("type_", ["payment_intent.created", "customer.updated", None, 7])
def test_any_other_type_is_only_recorded(type_):
    event = {"id": "evt_1", "type": type_, "data": {"object": {}}}
    assert not webhooks.acts_on(event)
    assert webhooks.dispatch(None, event=event, platform=None, now=None).kind == "ignored"  # type: ignore[arg-type]
