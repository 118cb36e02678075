"""The hosted checkout page at a session's ``url``: a card form that really pays."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .cards import CARDS
from .delivery import Deliverer
from .objects import format_amount
from .service import Card, Sandbox

PLACEHOLDER = "{CHECKOUT_SESSION_ID}"
FIELDS = (
    ("cardNumber", "card number"),
    ("cardExpiry", "expiry date"),
    ("cardCvc", "CVC"),
    ("billingName", "name on card"),
)
DECLINED = "Your card was declined."
INVALID_NUMBER = "Your card number is invalid."
RECHECK_S = 0.25  # while the payer waits for the completed webhook: see _await_first_delivery

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


class CardProblem(ValueError):
    """The submitted form cannot be charged; the message is shown to the payer."""


def read_card(form: dict[str, str], now: int) -> Card:
    """Validate the submitted card fields the way Checkout's form would."""
    values = {name: (form.get(name) or "").strip() for name, _ in FIELDS}
    missing = [label for name, label in FIELDS if not values[name]]
    if missing:
        raise CardProblem("Please fill in: " + ", ".join(missing) + ".")
    number = re.sub(r"\s+", "", values["cardNumber"])
    if number not in CARDS:
        raise CardProblem(INVALID_NUMBER)
    month, year = _expiry(values["cardExpiry"])
    today = datetime.fromtimestamp(now, UTC)
    if (year, month) < (today.year, today.month):
        raise CardProblem("Your card's expiration date is in the past.")
    if not re.fullmatch(r"\d{3,4}", values["cardCvc"]):
        raise CardProblem("Your card's security code is invalid.")
    return Card(number=number, exp_month=month, exp_year=year, name=values["billingName"])


def _expiry(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2})\s*/\s*(\d{2}|\d{4})", text) or re.fullmatch(r"(\d{2})(\d{2})", text)
    if not match or not 1 <= int(match.group(1)) <= 12:
        raise CardProblem("Your card's expiration date is invalid.")
    year = int(match.group(2))
    return int(match.group(1)), year + 2000 if year < 100 else year


class HostedPages:
    """GET shows the page; POST charges the card (the test cards of cards.py: 4242… and 3184…, the
    payer authenticating on the page, pay; 0002… and 0341… are declined)."""

    def __init__(self, sandbox: Sandbox, deliverer: Deliverer) -> None:
        self.sandbox = sandbox
        self.deliverer = deliverer

    async def show(self, request: Request) -> Response:
        """GET /c/pay/{session_id}."""
        session = self.sandbox.session_for_page(request.path_params["session_id"])
        return self._page(request, session, status=200 if session else 404)

    async def submit(self, request: Request) -> Response:
        """POST /c/pay/{session_id}."""
        session_id = request.path_params["session_id"]
        session = self.sandbox.session_for_page(session_id)
        if session is None:
            return self._page(request, None, status=404)
        if session["status"] != "open":
            return self._page(request, session, status=409)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            card = read_card(form, self.sandbox.now())
        except CardProblem as problem:
            return self._page(request, session, error=str(problem), form=form, status=400)
        if not CARDS[card.number].pays_on_page:
            return self._page(request, session, error=DECLINED, form=form, status=402)
        session, event_id = self.sandbox.pay(session_id, card)
        if event_id is None or session is None:
            return self._page(request, session, status=409 if session else 404)
        await self._await_first_delivery(event_id)
        target = session["success_url"].replace(PLACEHOLDER, session_id)
        return RedirectResponse(target, status_code=303)

    async def _await_first_delivery(self, event_id: str) -> None:
        """Like Checkout, give the completed webhook a chance before redirecting: until an
        attempt to deliver it has ended, or ``redirect_wait_s``. The deliverer wakes this when
        an attempt of the event ends; the state is also re-read every ``RECHECK_S`` (webhooks
        switched off, the endpoint removed meanwhile), not polled while the receiver is slow."""
        deadline = time.monotonic() + self.sandbox.config.redirect_wait_s
        self.deliverer.wake()
        while True:
            config = self.sandbox.config
            deliveries = self.sandbox.store.deliveries_of(event_id)
            if (
                not deliveries
                or not config.deliver_webhooks
                or any(d.attempts > 0 for d in deliveries)
                or all(self.sandbox.endpoint_target(d.endpoint_id) is None for d in deliveries)
            ):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await self.deliverer.wait_for_attempt(event_id, min(RECHECK_S, left))

    def _page(
        self,
        request: Request,
        session: dict[str, Any] | None,
        *,
        status: int,
        error: str | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        context: dict[str, Any] = {
            "session": session,
            "error": error,
            "billing_name": (form or {}).get("billingName", ""),
            "form_action": request.url.path,
            "title": "Checkout",
        }
        if session is not None:
            context.update(self._describe(session))
        html = _templates.get_template("checkout.html").render(context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def _describe(self, session: dict[str, Any]) -> dict[str, Any]:
        currency = session["currency"]
        items = [
            {
                "name": item["description"],
                "quantity": item["quantity"],
                "amount": format_amount(item["amount_total"], currency),
            }
            for item in session.get("_line_items", [])
        ]
        cancel = session.get("cancel_url")
        if cancel and self.sandbox.config.substitute_cancel_url:
            cancel = cancel.replace(PLACEHOLDER, session["id"])
        return {
            "items": items,
            "title": items[0]["name"] if len(items) == 1 else "Your order",
            "total": format_amount(session["amount_total"], currency),
            "state": session["status"],
            "cancel_href": cancel,
        }


class OnboardingPages:
    """The hosted Connect onboarding form behind an account link: "Submit" provides everything
    (charges and payouts enabled); "Finish later" leaves the bank account due. A used or
    expired link sends the visitor to the link's refresh_url, as Stripe does."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def show(self, request: Request) -> Response:
        """GET /setup/s/{account_id}/{token}."""
        account_id, token = request.path_params["account_id"], request.path_params["token"]
        account, refresh = self.sandbox.open_account_link(account_id, token)
        if account is None:
            return self._dead(refresh)
        html = _templates.get_template("onboarding.html").render(
            {"account": account, "form_action": request.url.path, "title": "Set up payouts"}
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def submit(self, request: Request) -> Response:
        """POST /setup/s/{account_id}/{token}: choice=complete | later."""
        form = await request.form()
        complete = form.get("choice") != "later"
        target = self.sandbox.submit_onboarding(
            request.path_params["account_id"], request.path_params["token"], complete=complete
        )
        return self._dead(None) if target is None else RedirectResponse(target, status_code=303)

    @staticmethod
    def _dead(refresh: str | None) -> Response:
        if refresh:
            return RedirectResponse(refresh, status_code=303)
        return HTMLResponse("<!doctype html><title>Link not found</title><p>This link does not exist.</p>", 404)
