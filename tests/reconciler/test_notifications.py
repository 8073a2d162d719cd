"""Escalations reach people once (gastown/services/notifications.py): an email to the
town's team leads (Django's in-memory backend) and a POST to its incoming webhook (a local
receiver), sent after the tick that raised them has committed."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from beads.models import Bead, BeadStatus, BeadType
from gastown.management.commands.create_team_lead_group import team_lead_group_sync
from gastown.models import NotificationSent
from gastown.services.notifications import (
    MAX_ATTEMPTS,
    notifications_send_due,
    team_lead_emails,
)
from tests.factories import BeadFactory, GroupFactory, RigFactory, TownFactory, UserFactory
from tests.reconciler.test_merge_request_rules import waiting_mr

pytestmark = pytest.mark.django_db

SECRET_PATH = "/services/T000/B000/s3cr3t-token"


class _Receiver(BaseHTTPRequestHandler):
    statuses: list[int] = []
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.statuses, _Receiver.received = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.url = f"http://127.0.0.1:{server.server_port}{SECRET_PATH}"
    yield _Receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def email_on(settings):
    settings.GASTOWN_NOTIFY_EMAIL = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def lead_of(town, username="lead", **kwargs):
    group, _ = team_lead_group_sync()
    user = UserFactory(username=username, **kwargs)
    user.groups.add(group)
    town.member_users.add(user)
    return user


def escalation(town, **kwargs):
    kwargs.setdefault("title", "Something needs you")
    return BeadFactory(town=town, type=BeadType.ESCALATION, **kwargs)


def test_a_wait_past_the_threshold_reaches_the_team_leads_and_the_webhook_once(
    tick, clock, receiver, email_on
):
    rig = RigFactory()
    town = rig.town
    town.notify_webhook_url = receiver.url
    town.save()
    lead_of(town)
    mr = waiting_mr(rig, clock, requested_reviewers=["alice"])
    clock.advance(hours=23)
    tick(town)
    assert mail.outbox == [] and receiver.received == []

    clock.advance(hours=2)
    tick(town)
    for _ in range(3):
        clock.advance(minutes=10)
        tick(town)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["lead@example.com"]
    assert mr.pr_url in message.subject and "alice" in message.body
    assert len(receiver.received) == 1
    assert mr.pr_url in receiver.received[0]["text"] and "alice" in receiver.received[0]["text"]
    rows = NotificationSent.objects.filter(town=town)
    assert {(r.channel, r.attempts, r.error) for r in rows} == {
        ("email", 1, ""),
        ("webhook", 1, ""),
    }
    assert all(r.sent_at for r in rows)


def test_each_escalation_is_sent_once_even_when_its_condition_comes_back(email_on):
    town = TownFactory()
    lead_of(town)
    first = escalation(town)
    notifications_send_due(town=town)
    notifications_send_due(town=town)
    assert len(mail.outbox) == 1
    Bead.objects.filter(pk=first.pk).update(status=BeadStatus.CLOSED)
    escalation(town)  # the same condition, raised again after the first was closed
    notifications_send_due(town=town)
    assert len(mail.outbox) == 2


def test_an_escalation_closed_before_the_sweep_is_not_sent(email_on):
    town = TownFactory()
    lead_of(town)
    escalation(town, status=BeadStatus.CLOSED)
    assert notifications_send_due(town=town) == 0
    assert mail.outbox == [] and not NotificationSent.objects.exists()


def test_without_a_mail_server_or_webhook_nothing_is_sent_or_recorded(settings):
    settings.GASTOWN_NOTIFY_EMAIL = False
    town = TownFactory()
    lead_of(town)
    escalation(town)
    assert notifications_send_due(town=town) == 0
    assert mail.outbox == [] and not NotificationSent.objects.exists()


def test_a_failing_webhook_is_retried_with_a_growing_delay_at_most_n_times(receiver, settings):
    settings.GASTOWN_NOTIFY_EMAIL = False
    town = TownFactory(notify_webhook_url=receiver.url)
    escalation(town)
    receiver.statuses = [500] * 10
    now = timezone.now()
    notifications_send_due(town=town, now=now)
    notifications_send_due(town=town, now=now + timedelta(seconds=59))  # not due yet
    assert len(receiver.received) == 1
    minutes = 0
    for _ in range(20):
        minutes += 5
        notifications_send_due(town=town, now=now + timedelta(minutes=minutes))
    assert len(receiver.received) == MAX_ATTEMPTS
    row = NotificationSent.objects.get()
    assert row.sent_at is None and row.attempts == MAX_ATTEMPTS
    assert row.error == "the webhook refused the notification (500)"


def test_a_webhook_that_recovers_gets_the_notification_once(receiver, settings):
    settings.GASTOWN_NOTIFY_EMAIL = False
    town = TownFactory(notify_webhook_url=receiver.url)
    escalation(town)
    receiver.statuses = [503]
    now = timezone.now()
    assert notifications_send_due(town=town, now=now) == 0
    assert notifications_send_due(town=town, now=now + timedelta(minutes=1)) == 1
    assert notifications_send_due(town=town, now=now + timedelta(hours=1)) == 0
    assert len(receiver.received) == 2
    row = NotificationSent.objects.get()
    assert row.sent_at is not None and row.error == "" and row.attempts == 2


def test_an_unreachable_webhook_is_recorded_without_its_secret_url(settings, caplog):
    settings.GASTOWN_NOTIFY_EMAIL = False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    town = TownFactory(notify_webhook_url=f"http://127.0.0.1:{port}{SECRET_PATH}")
    escalation(town)
    notifications_send_due(town=town)
    row = NotificationSent.objects.get()
    assert row.error.startswith("the webhook could not be reached")
    assert "s3cr3t" not in row.error and "s3cr3t" not in caplog.text
    assert "could not be reached" in caplog.text


def test_a_mail_server_that_refuses_is_recorded_and_retried(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.GASTOWN_NOTIFY_EMAIL = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    town = TownFactory()
    lead_of(town)
    escalation(town)
    now = timezone.now()
    notifications_send_due(town=town, now=now)
    row = NotificationSent.objects.get()
    assert row.sent_at is None and row.attempts == 1
    assert row.error.startswith("sending the email failed (ConnectionRefusedError")

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notifications_send_due(town=town, now=now + timedelta(minutes=1)) == 1
    assert len(mail.outbox) == 1


def test_with_no_team_lead_to_email_the_attempt_is_recorded(email_on):
    town = TownFactory()
    lead_of(town, email="")
    escalation(town)
    notifications_send_due(town=town)
    assert mail.outbox == []
    assert NotificationSent.objects.get().error == "no team lead of this town has an email address"


def test_team_leads_are_active_members_who_may_view_the_dashboard(db):
    town = TownFactory()
    lead_of(town, "direct")
    group, _ = team_lead_group_sync()
    via_group = UserFactory(username="viagroup")
    members = GroupFactory(name="platform")
    members.towns.add(town)
    via_group.groups.add(members, group)
    town.member_users.add(UserFactory(username="root", is_superuser=True))
    town.member_users.add(UserFactory(username="noperm"))
    lead_of(town, "gone", is_active=False)
    lead_of(TownFactory(), "elsewhere")
    assert team_lead_emails(town=town) == [
        "direct@example.com",
        "root@example.com",
        "viagroup@example.com",
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_send_each_escalation_once(receiver, email_on):
    assert connection.vendor == "postgresql"
    town = TownFactory(notify_webhook_url=receiver.url)
    lead_of(town)
    for n in range(10):
        escalation(town, title=f"Escalation number {n}")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            notifications_send_due(town=town)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    posted = Counter(r["text"].splitlines()[0] for r in receiver.received)
    emailed = Counter(m.subject for m in mail.outbox)
    assert len(posted) == 10 and set(posted.values()) == {1}
    assert len(emailed) == 10 and set(emailed.values()) == {1}
    assert NotificationSent.objects.filter(sent_at__isnull=False, attempts=1).count() == 20
