"""django-q2 task entry points. Each is a thin wrapper around the code the management
commands run, so a scheduled run and `manage.py reconcile` / `check_prs` are the same code.

Cadence (SPEC §3): the schedules (installed by `manage.py sync_schedules`) visit every town
once a minute, django-q2's floor; an active town's tick enqueues the next one a few seconds
later, and agent reports and webhooks enqueue one at once.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)
# The longest delay a queued tick may ask for (gastown.broker).
MAX_TICK_DELAY_SECONDS = 30


def _already_queued(broker: Any, func: str, args: tuple[object, ...]) -> bool:
    """Whether the same task waits in the queue, not yet taken by a worker (gastown.broker)."""
    return any(
        task.get("func") == func and tuple(task.get("args") or ()) == args
        for task in broker.waiting_tasks()
    )


def _enqueue(func: str, *args: object, delay_seconds: int = 0) -> None:
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    broker = get_broker()
    if _already_queued(broker, func, args):
        return
    # The delay is spent in the queue, not in a worker (gastown.broker).
    async_task(func, *args, broker=broker.delayed(delay_seconds))


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


def reconcile_town_task(town_id: int) -> str:
    from gastown.reconciler.tick import reconcile_towns

    return reconcile_towns(town_ids=[town_id], reschedule=True).summary()


def reconcile_town_later_task(town_id: int, delay_seconds: int) -> str:
    # The delay was spent in the queue (gastown.broker), not here; the argument names the
    # cadence, so a tick asking again finds this one queued.
    return reconcile_town_task(town_id)


def reconcile_all_task() -> str:
    from gastown.reconciler.tick import reconcile_towns

    return reconcile_towns(reschedule=True).summary()


def check_prs_task(town_id: int | None = None) -> str:
    from gastown.feedback.checks import check_prs

    return check_prs(town_ids=[town_id] if town_id else None).summary()
