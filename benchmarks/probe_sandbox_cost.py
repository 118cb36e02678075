"""The Stripe sandbox's CPU per paid and per cancelled booking, as the mix drives it (issue #33).

Starts ``benchmarks/sandbox_proc.py`` (optionally under cProfile) and a tiny webhook receiver in
this process, then per paid booking: create a Checkout Session with the official SDK, GET the
hosted page, POST the card form (which waits for the completed webhook), retrieve the session;
per cancelled booking: create, GET the hosted page, expire (its expired webhook delivered too).
Prints the sandbox process's CPU (utime + stime from /proc) per booking. ``--receiver-delay-ms``
makes the receiver answer slowly, like the crowded app at 1,000 parents.

    .venv/bin/python benchmarks/probe_sandbox_cost.py -n 100 --receiver-delay-ms 0
    .venv/bin/python benchmarks/probe_sandbox_cost.py -n 40 --receiver-delay-ms 500
    .venv/bin/python benchmarks/probe_sandbox_cost.py -n 100 --profile /tmp/sb.prof
    .venv/bin/python benchmarks/probe_sandbox_cost.py -n 100 --src /tmp/maintree/src   # another tree
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import stripe

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk_test_sandbox"
SECRET = "whsec_probe"
FORM = b"cardNumber=4242424242424242&cardExpiry=12%2F34&cardCvc=123&billingName=Probe+Parent"
TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the app (uvicorn) answers
    delay_s = 0.0
    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay_s)
        with self.lock:
            type(self).received += 1
        try:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        except (BrokenPipeError, ConnectionResetError):  # the sandbox stopped meanwhile
            pass

    def log_message(self, *args: object) -> None:
        pass


def _params(k: int) -> dict[str, object]:
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "usd", "unit_amount": 6000, "product_data": {"name": "Lesson"}},
                "quantity": 1,
            }
        ],
        "success_url": "http://127.0.0.1:9/payment/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:9/payment/cancel?session_id={CHECKOUT_SESSION_ID}",
        "client_reference_id": str(k),
        "customer_email": "parent@example.com",
        "metadata": {"booking_id": str(k)},
        "payment_intent_data": {"metadata": {"booking_id": str(k)}},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100, help="paid bookings (and n/2 cancelled)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--receiver-delay-ms", type=float, default=0.0)
    ap.add_argument("--profile", default=None, help="run the sandbox under cProfile, dump here")
    ap.add_argument("--src", default=str(ROOT / "src"), help="the sandbox's source (another tree's to compare)")
    args = ap.parse_args()

    _Receiver.delay_s = args.receiver_delay_ms / 1000
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    receiver.daemon_threads = True
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="probe_sandbox_")
    cmd = [sys.executable]
    if args.profile:
        cmd += ["-m", "cProfile", "-o", args.profile]
    cmd += [str(ROOT / "benchmarks" / "sandbox_proc.py"), "--port", str(port), "--db", f"{tmp}/sb.db"]
    cmd += ["--webhook-url", f"http://127.0.0.1:{receiver.server_address[1]}/hook", "--webhook-secret", SECRET]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([args.src, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, env=env)
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=args.concurrency * 2))
    try:
        for _ in range(200):
            try:
                http.get(f"{base}/v1/account", headers={"Authorization": f"Bearer {API_KEY}"})
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        client = stripe.StripeClient(
            API_KEY,
            base_addresses={"api": base},
            http_client=stripe.HTTPXClient(allow_sync_methods=True),
        )

        def paid(k: int) -> None:
            cs = client.v1.checkout.sessions.create(params=_params(k))  # type: ignore[arg-type]
            assert http.get(cs.url or "").status_code == 200
            r = http.post(cs.url or "", content=FORM, headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 303, r.status_code
            assert client.v1.checkout.sessions.retrieve(cs.id).status == "complete"

        def cancelled(k: int) -> None:
            cs = client.v1.checkout.sessions.create(params=_params(k))  # type: ignore[arg-type]
            assert http.get(cs.url or "").status_code == 200
            assert client.v1.checkout.sessions.expire(cs.id).status == "expired"

        def run(fn: object, count: int, offset: int) -> tuple[float, float]:
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(fn, range(offset, offset + 5)))  # type: ignore[arg-type]  # warm-up
                want = _Receiver.received
                cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
                list(pool.map(fn, range(offset + 5, offset + 5 + count)))  # type: ignore[arg-type]
            deadline = time.monotonic() + 30
            while _Receiver.received < want + count and time.monotonic() < deadline:
                time.sleep(0.01)  # the last webhooks (the expired ones are not awaited)
            time.sleep(0.3)
            return (_cpu_s(proc.pid) - cpu0) / count * 1000, time.monotonic() - t0

        idle0 = _cpu_s(proc.pid)
        time.sleep(2)
        idle = (_cpu_s(proc.pid) - idle0) / 2 * 1000
        paid_ms, paid_wall = run(paid, args.n, 0)
        cancel_ms, cancel_wall = run(cancelled, args.n // 2, 100_000)
        print(f"receiver delay {args.receiver_delay_ms:.0f} ms, concurrency {args.concurrency}")
        print(f"sandbox idle: {idle:.1f} ms CPU per second")
        print(f"paid booking:      {paid_ms:6.2f} ms sandbox CPU each (n={args.n}, {paid_wall:.1f} s)")
        print(f"cancelled booking: {cancel_ms:6.2f} ms sandbox CPU each (n={args.n // 2}, {cancel_wall:.1f} s)")
    finally:
        proc.send_signal(2)  # SIGINT: uvicorn stops cleanly and cProfile writes its file
        proc.wait(30)
        receiver.shutdown()


if __name__ == "__main__":
    main()
