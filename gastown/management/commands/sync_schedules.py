"""Install the django-q2 schedules, idempotently: update or create by name (django-q2's
Schedule.name is not unique, so extra rows with our names are removed)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django_q.models import Schedule

SCHEDULES = [
    # The safety net: every town once a minute (django-q2's floor); active towns re-enqueue
    # their next tick a few seconds later.
    {"name": "gastown.reconcile", "func": "gastown.tasks.reconcile_all_task"},
    {"name": "gastown.check_prs", "func": "gastown.tasks.check_prs_task"},
]


def sync_schedules() -> list[str]:
    changes = []
    with transaction.atomic():
        for spec in SCHEDULES:
            rows = list(Schedule.objects.filter(name=spec["name"]).order_by("pk"))
            for extra in rows[1:]:
                extra.delete()
                changes.append(f"removed duplicate {spec['name']}")
            defaults = {
                "func": spec["func"],
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
            }
            if rows:
                row = rows[0]
                if any(getattr(row, k) != v for k, v in defaults.items()):
                    for k, v in defaults.items():
                        setattr(row, k, v)
                    row.save()
                    changes.append(f"updated {spec['name']}")
            else:
                Schedule.objects.create(name=spec["name"], **defaults)
                changes.append(f"created {spec['name']}")
    return changes


class Command(BaseCommand):
    help = "Install or update gastown's django-q2 schedules (safe to run at every start)."

    def handle(self, *args: Any, **options: Any) -> None:
        changes = sync_schedules()
        self.stdout.write("; ".join(changes) if changes else "schedules up to date")
