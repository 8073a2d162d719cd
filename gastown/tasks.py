"""django-q2 task entry points. Each is a thin wrapper around the code the management
commands run, so a scheduled run and `manage.py reconcile` / `check_prs` are the same code.
Queueing them is gastown.scheduling's job; the functions' dotted paths are stored in the
broker and in the schedules, so they keep their names.
"""

from __future__ import annotations

from gastown.feedback.checks import check_prs
from gastown.reconciler.tick import reconcile_towns


def reconcile_town_task(town_id: int) -> str:
    return reconcile_towns(town_ids=[town_id], reschedule=True).summary()


def reconcile_town_later_task(town_id: int, delay_seconds: int) -> str:
    # The delay was spent in the queue (gastown.broker), not here; the argument names the
    # cadence, so a tick asking again finds this one queued.
    return reconcile_town_task(town_id)


def reconcile_all_task() -> str:
    return reconcile_towns(reschedule=True).summary()


def check_prs_task(town_id: int | None = None) -> str:
    return check_prs(town_ids=[town_id] if town_id else None).summary()


def check_prs_later_task(town_id: int) -> str:
    # Queued with a delay, spent in the queue (gastown.scheduling.enqueue_feedback_check).
    return check_prs_task(town_id)
