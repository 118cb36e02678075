#!/usr/bin/env python3
"""Make docs/img/my-bookings.png (the demo data, three bookings made through the pages),
docs/img/teacher-phone.png (a teacher's times on a phone in New York, the booking form open) and
docs/img/console.png (an admin finds a booking by its Stripe id in the operator console and
cancels it with a full refund: the booking's console page).

Runs the app and the Stripe sandbox on a throwaway SQLite database, so it never touches ./var.
Usage: .venv/bin/python scripts/screenshot.py [output.png]
"""

from __future__ import annotations

import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import Page, expect, sync_playwright

from stripe_sandbox.config import SandboxConfig
from stripe_sandbox.server import start_in_thread
from tutorbook import demo
from tutorbook.accounts import service as accounts
from tutorbook.accounts.security import password_hasher
from tutorbook.app import create_app
from tutorbook.clock import utc_now
from tutorbook.config import Settings
from tutorbook.db import Database
from tutorbook.identity import Role
from tutorbook.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "operator@demo.example.com"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_servers(var: Path) -> tuple[str, list]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        var_dir=var,
        public_url=base,
        jobs_enabled=False,
        log_level="WARNING",
        sandbox_port=free_port(),
    ).resolved()
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    with db.session_scope() as session:
        demo.load(session, hasher=password_hasher(settings), settings=settings)
        accounts.create_user(
            session,
            hasher=password_hasher(settings),
            settings=settings,
            email=ADMIN,
            password=demo.DEMO_PASSWORD,
            full_name="Olive Operator",
            role=Role.ADMIN,
            time_zone="Europe/London",
            now=utc_now(),
        )
    sandbox = start_in_thread(
        SandboxConfig(
            db_path=str(var / "sandbox.db"),
            webhook_url=base + "/api/StripeWebhook/webhook",
            webhook_secret=settings.stripe_webhook_secret,
        ),
        port=settings.sandbox_port,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, db=db),
            host="127.0.0.1",
            port=port,
            log_config=None,
            log_level="warning",
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return base, [server, sandbox]


def choose(page: Page, base: str, teacher: str, minutes: int = 60) -> None:
    """The teacher's page: the length first, next week, the first start that fits."""
    page.goto(base + "/")
    page.get_by_role("link", name=teacher, exact=True).click()
    page.get_by_label("Session length").select_option(str(minutes))
    page.get_by_role("button", name="Show times").click()
    page.get_by_role("link", name="Later week →").click()
    page.locator("a.slot").first.click()


def book(page: Page, base: str, teacher: str, child: str) -> None:
    choose(page, base, teacher)
    page.get_by_label("Child").select_option(label=child)
    page.get_by_role("button", name=re.compile("^Book and pay")).click()
    expect(page.get_by_text("Test mode – Stripe sandbox")).to_be_visible()


def pay(page: Page) -> None:
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry date").fill("12 / 34")
    page.get_by_label("CVC").fill("123")
    page.get_by_label("Name on card").fill("Pat Parent")
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_role("heading", name="Payment received – your session is booked")).to_be_visible()


def console(browser, base: str, out: Path) -> None:
    """The operator finds Ada Lovelace's booking by its checkout id and cancels it, full refund."""
    page = browser.new_page(viewport={"width": 1000, "height": 900}, locale="en-GB")
    page.goto(base + "/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(demo.DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(base + "/admin/bookings?status=1")
    checkout = page.locator("tbody tr", has_text="Ada Lovelace").locator("code").inner_text()
    page.get_by_label("Booking or Stripe id").fill(checkout)
    page.get_by_role("button", name="Find").click()
    page.locator("tbody tr").get_by_role("link").click()
    page.get_by_role("radio", name=re.compile("Full")).check()
    page.get_by_label("Reason (kept in the history)").fill("The teacher is ill; the parent asked for a refund.")
    page.get_by_role("button", name="Cancel the booking").click()
    expect(page.locator(".refund")).to_have_attribute("data-status", "succeeded")
    page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out}")


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base, servers = start_servers(Path(tmp))
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(
                viewport={"width": 900, "height": 900}, locale="en-GB", timezone_id="Europe/London"
            )
            page = context.new_page()
            page.goto(base + "/login")
            page.get_by_label("Email").fill(demo.PARENT[0])
            page.get_by_label("Password").fill(demo.DEMO_PASSWORD)
            page.get_by_role("button", name="Log in").click()
            book(page, base, "Ada Lovelace", "Robin Parent")
            pay(page)
            book(page, base, "Marie Curie", "Sam Parent")
            pay(page)
            page.goto(base + "/my-bookings")
            page.locator(".booking", has_text="Marie Curie").get_by_role("link", name=re.compile("^Cancel")).click()
            page.get_by_role("button", name="Yes, cancel the booking").click()
            book(page, base, "Sei Shonagon", "Robin Parent")  # left unpaid: Pending
            page.goto(base + "/my-bookings")
            expect(page.locator(".booking")).to_have_count(3)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            console(browser, base, out.parent / "console.png")
            # The same parent on a phone: the picker, the chosen time's booking form, the banner.
            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, locale="en-US", timezone_id="America/New_York"
            )
            phone.add_cookies([c for c in context.cookies() if c["name"] != "tutorbook_zone"])
            page = phone.new_page()
            choose(page, base, "Ada Lovelace", 90)
            page.locator("#book").scroll_into_view_if_needed()
            page.screenshot(path=str(out.with_name("teacher-phone.png")))
            browser.close()
        app_server, sandbox = servers
        app_server.should_exit = True
        sandbox.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img" / "my-bookings.png")
