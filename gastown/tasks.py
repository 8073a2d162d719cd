"""django-q2 task entry points. Each is a thin wrapper around the code the management
commands run, so a scheduled run and `manage.py reconcile` / `check_prs` are the same code.

Cadence (SPEC §3): the schedules (installed by `manage.py sync_schedules`) visit every town
once a minute, django-q2's floor; an active town's tick enqueues the next one a few seconds
later, and agent reports and webhooks enqueue one at once.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

log = logging.getLogger(__name__)
MAX_TICK_DELAY_SECONDS = 30


def _already_queued(func: str, args: tuple[object, ...]) -> bool:
    """Whether the same task already waits in (or is being run from) the ORM broker's queue.

    Ticks and checks are idempotent, so a second copy only costs time; but every tick of an
    active town and every due PR asks again, and without this the queue fills with copies."""
    from django_q.models import OrmQ

    for queued in OrmQ.objects.all()[:500]:
        try:
            task = queued.task
        except Exception:  # a payload we cannot read is not ours to judge
            continue
        if task.get("func") == func and tuple(task.get("args") or ()) == args:
            return True
    return False


def _enqueue(func: str, *args: object) -> None:
    from django_q.tasks import async_task

    if not _already_queued(func, args):
        async_task(func, *args)


def enqueue_tick(town_id: int, *, delay_seconds: int = 0) -> None:
    """Ask for a reconciler tick of one town (at once, or after a delay)."""
    if not settings.GASTOWN_ENQUEUE_TASKS:
        return
    if delay_seconds > 0:
        _enqueue("gastown.tasks.reconcile_town_later_task", town_id, delay_seconds)
    else:
        _enqueue("gastown.tasks.reconcile_town_task", town_id)


def enqueue_feedback_check(town_id: int) -> None:
    """Ask for a PR feedback check of one town at once (after a webhook or a re-check)."""
    if not settings.GASTOWN_ENQUEUE_TASKS:
        return
    _enqueue("gastown.tasks.check_prs_task", town_id)


def reconcile_town_task(town_id: int) -> str:
    from gastown.reconciler.tick import reconcile_towns

    return reconcile_towns(town_ids=[town_id], reschedule=True).summary()


def reconcile_town_later_task(town_id: int, delay_seconds: int) -> str:
    # django-q2 has no delayed task, and its scheduler looks at one-off schedules only about
    # every 30 s, so a schedule cannot say "in three seconds": the worker waits instead. The
    # wait is short and bounded, far below the cluster's task timeout.
    time.sleep(min(max(delay_seconds, 0), MAX_TICK_DELAY_SECONDS))
    return reconcile_town_task(town_id)


def reconcile_all_task() -> str:
    from gastown.reconciler.tick import reconcile_towns

    return reconcile_towns(reschedule=True).summary()


def check_prs_task(town_id: int | None = None) -> str:
    from gastown.feedback.checks import check_prs

    return check_prs(town_ids=[town_id] if town_id else None).summary()
