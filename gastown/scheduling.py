"""Asking for work: queue a reconciler tick or a PR feedback check on django-q2's broker.

Services (agent reports, webhooks, the reconciler's effects, the feedback check) call these;
they import no domain code, so asking for a tick never pulls the reconciler into the caller.
The task functions themselves live in gastown.tasks, the workers' entry points.

Cadence (docs/domain.md §3): the schedules visit every town once a minute, django-q2's floor;
an active town's tick enqueues the next one a few seconds later, and agent reports and
webhooks enqueue one at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

log = logging.getLogger(__name__)
MAX_TICK_DELAY_SECONDS = 30


def _already_queued(func: str, args: tuple[object, ...]) -> bool:
    """Whether the same task waits in the ORM broker's queue, not yet claimed by a worker.

    Ticks and checks are idempotent, so a second copy only costs time; but every tick of an
    active town and every due PR asks again, and without this the queue fills with copies.

    The broker deletes a row only when its task is acknowledged, after it ran; a claim moves
    the row's `lock` to the claim time plus Q_CLUSTER's retry. A row due now, or within the
    longest tick delay, is waiting; a row locked further ahead is running, and a running tick
    asking for the next one must not find itself (retry - timeout > MAX_TICK_DELAY_SECONDS,
    checked by a test). A claim whose retry time passed is due again, so it counts.
    """
    from django_q.models import OrmQ

    horizon = timezone.now() + timedelta(seconds=MAX_TICK_DELAY_SECONDS)
    for queued in OrmQ.objects.filter(Q(lock__isnull=True) | Q(lock__lte=horizon))[:500]:
        try:
            task = queued.task
        except Exception:  # a payload we cannot read is not ours to judge
            continue
        if task.get("func") == func and tuple(task.get("args") or ()) == args:
            return True
    return False


def _delayed_broker(delay_seconds: int) -> Any:
    """The ORM broker, with the row not due for `delay_seconds`.

    django-q2 has no delayed task, and its scheduler looks at one-off schedules only about
    every 30 s; but the ORM broker's workers pull only rows whose `lock` has passed, so a row
    locked a few seconds ahead is a delayed task that occupies no worker while it waits (the
    single SQLite worker stays free for reports and checks)."""
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    delay = timedelta(seconds=min(max(delay_seconds, 0), MAX_TICK_DELAY_SECONDS))

    class DelayedORM(ORM):
        def enqueue(self, task: str) -> int:
            row = self.get_connection().create(
                key=self.list_key or Conf.CLUSTER_NAME, payload=task, lock=timezone.now() + delay
            )
            return row.pk

    return DelayedORM()


def _enqueue(func: str, *args: object, delay_seconds: int = 0) -> None:
    from django_q.tasks import async_task

    if _already_queued(func, args):
        return
    if delay_seconds > 0:
        async_task(func, *args, broker=_delayed_broker(delay_seconds))
    else:
        async_task(func, *args)


def enqueue_tick(town_id: int, *, delay_seconds: int = 0) -> None:
    """Ask for a reconciler tick of one town (at once, or after a delay)."""
    if not settings.GASTOWN_ENQUEUE_TASKS:
        return
    if delay_seconds > 0:
        _enqueue(
            "gastown.tasks.reconcile_town_later_task",
            town_id,
            delay_seconds,
            delay_seconds=delay_seconds,
        )
    else:
        _enqueue("gastown.tasks.reconcile_town_task", town_id)


def enqueue_feedback_check(town_id: int) -> None:
    """Ask for a PR feedback check of one town at once (after a webhook or a re-check)."""
    if not settings.GASTOWN_ENQUEUE_TASKS:
        return
    _enqueue("gastown.tasks.check_prs_task", town_id)
