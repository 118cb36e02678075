"""A mail worker stopping (SIGTERM) mid-batch: what it handed to the server is sent, the rest of
its claimed batch goes back to pending at once (not after the 5-minute lease), attempt not counted,
and the next worker sends each of them once."""

from __future__ import annotations

import asyncio
import threading

from tests.jobs.helpers import confirmed
from tests.notifications.test_mail import notifications, run_mail
from tutorbook.clock import utc_now
from tutorbook.flows import mail as mail_flow
from tutorbook.jobs.scheduler import Scheduler
from tutorbook.metrics import Metrics


def test_a_stopping_worker_gives_back_the_messages_it_claimed_and_did_not_send(api, c, smtp, mail_svc, monkeypatch):
    first = confirmed(c, hour=9)
    confirmed(c, teacher=first["t"], hour=13)  # four confirmations in all
    stop = threading.Event()
    original = smtp.inbox.handle_DATA

    async def accept_then_stop(server, session, envelope):
        answer = await original(server, session, envelope)
        stop.set()  # SIGTERM arrives while the first message is being sent
        return answer

    monkeypatch.setattr(smtp.inbox, "handle_DATA", accept_then_stop)
    out = mail_flow.deliver(mail_svc, now=utc_now(), stop=stop)
    assert sorted(outcome for _, outcome in out) == ["released", "released", "released", "sent"]
    assert len(smtp.inbox.messages) == 1
    back = [n for n in notifications(api, status="pending") if n.kind.startswith("confirmed")]
    assert len(back) == 3
    assert all(n.claimed_until is None and n.attempts == 0 for n in back)

    monkeypatch.setattr(smtp.inbox, "handle_DATA", original)
    assert run_mail(mail_svc).counts() == {"sent": 3}  # due at once for the next worker
    got = [(m["To"], m["Subject"]) for m in smtp.inbox.messages]
    assert len(got) == 4 and len(set(got)) == 4


def test_stopping_the_schedule_tells_the_mail_job_to_give_back_its_batch(api):
    async def scenario():
        scheduler = Scheduler(api.state.services, metrics=Metrics(), names=["mail"])
        assert not scheduler.stopping.is_set()
        await scheduler.stop()
        return scheduler.stopping.is_set()

    assert asyncio.run(scenario())
