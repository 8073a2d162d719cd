"""django-q2 task entry points. Each is a thin wrapper around the code the management
commands run, so a scheduled run and `manage.py reconcile` / `check_prs` are the same code.

Cadence (SPEC §3): the schedules (installed by `manage.py sync_schedules`) visit every town
once a minute, django-q2's floor; an active town's tick enqueues the next one a few seconds
later, and agent reports and webhooks enqueue one at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)


def _already_queued(func: str, args: tuple[object, ...]) -> bool:
    """Whether the same task waits in the ORM broker's queue (or as a one-off schedule).

    Ticks and checks are idempotent, so a second copy only costs time; but every tick of an
    active town asks again, and without this the queue would fill with copies."""
    from django_q.models import OrmQ, Schedule

    if Schedule.objects.filter(
        func=func, args=",".join(repr(a) for a in args) or None, schedule_type=Schedule.ONCE
    ).exists():
        return True
    for queued in OrmQ.objects.all()[:500]:
        try:
            task = queued.task()
        except Exception:  # a payload we cannot read is not ours to judge
            continue
        if task.get("func") == func and tuple(task.get("args") or ()) == args:
            return True
    return False


def _enqueue(func: str, *args: object, delay_seconds: int = 0, group: str = "") -> None:
    from django_q.models import Schedule

    if _already_queued(func, args):
        return
    if delay_seconds <= 0:
        from django_q.tasks import async_task

        async_task(func, *args, group=group or None)
        return
    # django-q2 has no delayed async task; a one-off schedule runs once at next_run.
    Schedule.objects.create(
        func=func,
        args=",".join(repr(a) for a in args) if args else None,
        schedule_type=Schedule.ONCE,
        repeats=-1,
        next_run=timezone.now() + timedelta(seconds=delay_seconds),
        name=None,
    )


def enqueue_tick(town_id: int, *, delay_seconds: int = 0) -> None:
    """Ask for a reconciler tick of one town (at once, or after a delay)."""
    if not settings.GASTOWN_ENQUEUE_TASKS:
        return
    _enqueue("gastown.tasks.reconcile_town_task", town_id, delay_seconds=delay_seconds)


def enqueue_feedback_check(town_id: int) -> None:
    """Ask for a PR feedback check of one town at once (after a webhook or a re-check)."""
    if not settings.GASTOWN_ENQUEUE_TASKS:
        return
    _enqueue("gastown.tasks.check_prs_task", town_id)


def reconcile_town_task(town_id: int) -> str:
    from gastown.reconciler.tick import reconcile_towns

    return reconcile_towns(town_ids=[town_id], reschedule=True).summary()


def reconcile_all_task() -> str:
    from gastown.reconciler.tick import reconcile_towns

    return reconcile_towns(reschedule=True).summary()


def check_prs_task(town_id: int | None = None) -> str:
    from gastown.feedback.checks import check_prs

    return check_prs(town_ids=[town_id] if town_id else None).summary()
