"""Escalations sent to people (docs/domain.md §8): an email to the town's team leads and a
POST to the town's Slack-compatible incoming webhook, each once.

Escalations are rows (beads), so this is a sweep rather than a call at each place that raises
one: the reconciler calls `notifications_send_due` after each tick has committed, which picks
up every open escalation (raised by the reconciler itself, e.g. rule W for a wait past the
town's threshold, or by the feedback check) within one tick; one closed before that is not
news any more. "Once" is a
NotificationSent row per (key, channel), unique in the database: the sender claims it with a
conditional update before sending and records the outcome; a failure is retried with a
doubling back-off, at most MAX_ATTEMPTS times in all.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import send_mail
from django.db import IntegrityError
from django.db.models import Q
from django.utils import timezone

from beads.models import TERMINAL_STATUSES, Bead, BeadType
from gastown.models import NotificationChannel, NotificationSent, Town, TownPermission

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
#: Wait before the 2nd attempt; it doubles for each one after.
RETRY_AFTER = timedelta(minutes=1)
WEBHOOK_TIMEOUT_SECONDS = 10

Sender = Callable[[Town, Bead], str]


def escalation_notification_key(bead: Bead) -> str:
    # The bead, not its escalation key: a condition that comes back after its escalation was
    # closed raises a new escalation with the same key, and that one is news again.
    return f"escalation:{bead.pk}"


def team_lead_emails(*, town: Town) -> list[str]:
    """Active members of the town (directly or through a group) who may view its dashboard
    and have an email address."""
    perm = Permission.objects.filter(
        content_type__app_label="gastown", codename=TownPermission.VIEW_DASHBOARD.value
    )
    users = (
        get_user_model()
        .objects.filter(Q(towns=town) | Q(groups__towns=town), is_active=True)
        .filter(
            Q(is_superuser=True) | Q(user_permissions__in=perm) | Q(groups__permissions__in=perm)
        )
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )
    return sorted(set(users))


def _text(town: Town, bead: Bead) -> str:
    lines = [bead.title]
    if bead.body:
        lines += ["", bead.body]
    lines += ["", f"Escalation {bead.pk} in town {town.name} ({town.slug})."]
    return "\n".join(lines)


def _send_email(town: Town, bead: Bead) -> str:
    recipients = team_lead_emails(town=town)
    if not recipients:
        return "no team lead of this town has an email address"
    try:
        send_mail(
            subject=f"[gastown] {town.name}: {bead.title}"[:200],
            message=_text(town, bead),
            from_email=None,
            recipient_list=recipients,
        )
    except Exception as exc:  # SMTP and socket errors alike: recorded, retried
        return f"sending the email failed ({type(exc).__name__}: {exc})"[:1000]
    return ""


def _post_webhook(town: Town, bead: Bead) -> str:
    body = json.dumps({"text": f"*{town.name}*: {_text(town, bead)}"}).encode()
    request = urllib.request.Request(
        town.notify_webhook_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    # The URL carries the webhook's secret: no message here may include it.
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            if 200 <= response.status < 300:
                return ""
            return f"the webhook answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"the webhook refused the notification ({exc.code})"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the webhook could not be reached ({type(reason).__name__})"


def _channels(town: Town) -> dict[str, Sender]:
    channels: dict[str, Sender] = {}
    if settings.GASTOWN_NOTIFY_EMAIL:
        channels[NotificationChannel.EMAIL] = _send_email
    if town.notify_webhook_url:
        channels[NotificationChannel.WEBHOOK] = _post_webhook
    return channels


def _due(row: NotificationSent, now: datetime) -> bool:
    if row.sent_at is not None or row.attempts >= MAX_ATTEMPTS:
        return False
    return row.attempts == 0 or now >= row.updated_at + RETRY_AFTER * 2 ** (row.attempts - 1)


def _claim(row: NotificationSent, now: datetime) -> bool:
    """Count the attempt before making it: of two workers, one sends."""
    claimed = NotificationSent.objects.filter(
        pk=row.pk, attempts=row.attempts, sent_at__isnull=True
    ).update(attempts=row.attempts + 1, updated_at=now)
    return claimed == 1


def notifications_send_due(*, town: Town, now: datetime | None = None) -> int:
    """Send what is due for the town's open escalations; returns how many went out now.

    Call it outside a transaction (after the tick's commit): a notification must never be
    sent for an escalation that is then rolled back."""
    now = now or timezone.now()
    channels = _channels(town)
    if not channels:
        return 0
    escalations = list(
        Bead.objects.filter(town=town, type=BeadType.ESCALATION)
        .exclude(status__in=TERMINAL_STATUSES)
        .order_by("pk")
    )
    if not escalations:
        return 0
    keys = {escalation_notification_key(b): b for b in escalations}
    rows = {
        (row.key, row.channel): row
        for row in NotificationSent.objects.filter(key__in=list(keys), channel__in=list(channels))
    }
    sent = 0
    for key, bead in keys.items():
        for channel, send in channels.items():
            row = rows.get((key, channel))
            if row is None:
                try:
                    row = NotificationSent.objects.create(
                        town=town, key=key, channel=channel, updated_at=now
                    )
                except IntegrityError:  # another worker created it meanwhile: it sends
                    continue
            if not _due(row, now) or not _claim(row, now):
                continue
            error = send(town, bead)
            NotificationSent.objects.filter(pk=row.pk).update(
                sent_at=None if error else now, error=error, updated_at=now
            )
            if error:
                log.warning(
                    "notification %s by %s failed (attempt %d of %d): %s",
                    key,
                    channel,
                    row.attempts + 1,
                    MAX_ATTEMPTS,
                    error,
                )
            else:
                sent += 1
    return sent
