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
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)
# The longest delay a queued task (a tick, a feedback check) may ask for (gastown.broker).
MAX_TASK_DELAY_SECONDS = 30


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


def enqueue_feedback_check(town_id: int, *, delay_seconds: int = 0) -> None:
    """Ask for a PR feedback check of one town at once (after a webhook or a re-check), or
    after a delay (when its next PR falls due: the once-a-minute schedule alone, which
    django-q2 wakes every 30 s, could leave a PR for a second interval)."""
    if not settings.GASTOWN_ENQUEUE_TASKS:
        return
    if delay_seconds > 0:
        # One timer per town whatever its delay: a queued one is already on its way.
        _enqueue("gastown.tasks.check_prs_later_task", town_id, delay_seconds=delay_seconds)
    else:
        _enqueue("gastown.tasks.check_prs_task", town_id)
