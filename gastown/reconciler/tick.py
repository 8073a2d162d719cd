"""One reconciler tick for a town (domain.md §3), and the command/task entry points."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from gastown.logs import log_context
from gastown.models import (
    FeedbackCheckRun,
    ReconcilerTick,
    SideEffectIntent,
    TelemetryDay,
    TelemetryEvent,
    TelemetryWaitDay,
    Town,
    WebhookDelivery,
)
from gastown.reconciler import actions as a
from gastown.reconciler.apply import SideEffect, apply_actions
from gastown.reconciler.effects import notify_escalations, run_intents, run_side_effects
from gastown.reconciler.load import load_snapshot
from gastown.reconciler.rules import plan
from gastown.services.telemetry import telemetry_rollup

log = logging.getLogger(__name__)

TICK_HISTORY = timedelta(days=1)
DELIVERY_HISTORY = timedelta(days=7)
TELEMETRY_HISTORY = timedelta(days=90)
# Not every tick needs to prune; one in this many does (the deletes use indexed scans).
PRUNE_EVERY = 20
# Planned actions kept on a tick's record for the dashboard; the counts cover them all.
PLAN_KEPT = 100


@dataclass
class TickResult:
    town: Town
    planned: list[a.Action] = field(default_factory=list)
    applied: list[a.Action] = field(default_factory=list)
    duration_ms: int = 0
    skipped: bool = False  # another worker holds the town
    dry_run: bool = False

    @property
    def actions_by_kind(self) -> dict[str, int]:
        return dict(Counter(action.kind for action in self.applied))

    def plan_record(self) -> list[dict[str, object]]:
        """The first PLAN_KEPT planned actions as the tick's record keeps them."""
        applied = {id(x) for x in self.applied}
        return [
            {"kind": x.kind, "text": x.describe(), "applied": id(x) in applied}
            for x in self.planned[:PLAN_KEPT]
        ]

    @property
    def active(self) -> bool:
        """Something moved: the next tick comes a few seconds later. A feedback check request
        alone does not count, or a town with a watched PR would never go idle."""
        moved = [x for x in self.applied if not isinstance(x, a.RequestFeedbackCheck)]
        return bool(moved)


@dataclass
class TownsResult:
    ticks: list[TickResult]

    def summary(self) -> str:
        applied = Counter[str]()
        for tick in self.ticks:
            applied.update(
                tick.actions_by_kind if not tick.dry_run else Counter(x.kind for x in tick.planned)
            )
        verb = "planned" if any(t.dry_run for t in self.ticks) else "applied"
        busy = sum(1 for t in self.ticks if t.skipped)
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(applied.items())) or "nothing"
        return f"{len(self.ticks)} town(s), {verb}: {kinds}" + (f", {busy} busy" if busy else "")


def _lock_town(town_id: int) -> Town | None:
    """Take the town's row lock for the tick (PostgreSQL); a second worker skips instead of
    waiting. On SQLite the IMMEDIATE transaction already serialises writers."""
    qs = Town.objects.filter(pk=town_id)
    if connection.vendor == "postgresql":
        qs = qs.select_for_update(skip_locked=True)
    return qs.first()


def reconcile_town(town: Town, *, now: datetime | None = None, dry_run: bool = False) -> TickResult:
    now = now or timezone.now()
    # The tick is named by its start, as its ReconcilerTick row and the dashboard show it.
    with log_context(town=town.slug, tick=None if dry_run else now.isoformat()):
        return _reconcile_town(town, now=now, dry_run=dry_run)


def _reconcile_town(town: Town, *, now: datetime, dry_run: bool) -> TickResult:
    started = time.monotonic()
    if dry_run:
        snapshot = load_snapshot(town, now)
        return TickResult(town=town, planned=plan(snapshot), dry_run=True)
    result = TickResult(town=town)
    effects: list[SideEffect] = []
    with transaction.atomic():
        locked = _lock_town(town.pk)
        if locked is None:
            result.skipped = True
            return result
        result.town = town = locked
        snapshot = load_snapshot(town, now)
        result.planned = plan(snapshot)
        result.applied, effects = apply_actions(town, result.planned, now)
        result.duration_ms = int((time.monotonic() - started) * 1000)
        ReconcilerTick.objects.create(
            town=town,
            started_at=now,
            duration_ms=result.duration_ms,
            actions=result.actions_by_kind,
            planned=len(result.planned),
            plan=result.plan_record(),
        )
    run_intents(town, now)
    run_side_effects(town, effects, now)
    notify_escalations(town, now)
    return result


def dry_run(town: Town, now: datetime | None = None) -> list[a.Action]:
    """What the reconciler would do now, without doing it (the dashboard's dry run)."""
    return reconcile_town(town, now=now, dry_run=True).planned


def prune(now: datetime) -> None:
    """GC (domain.md §3): processed events, webhook deliveries and finished side-effect
    intents after 7 days, ticks and feedback check records after a day, telemetry after 90,
    except the override audit and convoy transitions."""
    ReconcilerTick.objects.filter(started_at__lt=now - TICK_HISTORY).delete()
    FeedbackCheckRun.objects.filter(started_at__lt=now - TICK_HISTORY).delete()
    # override.* rows (services.overrides.override_audit) are the only record of a town pause
    # or of an override on a convoy with no landing MR bead to hold a BeadEvent, and
    # convoy.transition rows the only one of a convoy's early transitions: kept like the audit.
    TelemetryEvent.objects.filter(created_at__lt=now - TELEMETRY_HISTORY).exclude(
        name__startswith="override."
    ).exclude(name="convoy.transition").delete()
    oldest_day = timezone.localdate(now - TELEMETRY_HISTORY)
    TelemetryDay.objects.filter(day__lt=oldest_day).delete()
    TelemetryWaitDay.objects.filter(day__lt=oldest_day).delete()
    # A redelivery older than a week is not going to come: its id need not be remembered.
    WebhookDelivery.objects.filter(received_at__lt=now - DELIVERY_HISTORY).delete()
    # A finished side effect is not run again; a week of them tells what was sent.
    SideEffectIntent.objects.filter(
        finished_at__isnull=False, finished_at__lt=now - DELIVERY_HISTORY
    ).delete()
    # The bead audit (BeadEvent) is never pruned: it is the record of what happened.


def reconcile_towns(
    *,
    town_ids: list[int] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    reschedule: bool = False,
) -> TownsResult:
    towns = Town.objects.order_by("pk")
    if town_ids is not None:
        towns = towns.filter(pk__in=town_ids)
    ticks = []
    for town in towns:
        try:
            tick = reconcile_town(town, now=now, dry_run=dry_run)
        except Exception:
            with log_context(town=town.slug):
                log.exception("reconciler tick of town %s failed", town.slug)
            continue
        ticks.append(tick)
        if reschedule and tick.active and not dry_run:
            from gastown.scheduling import enqueue_tick

            enqueue_tick(town.pk, delay_seconds=settings.GASTOWN_ACTIVE_TICK_SECONDS)
    if not dry_run and (now or timezone.now()).minute % PRUNE_EVERY == 0:
        prune(now or timezone.now())
        # Closed days into the telemetry rollup the dashboard reads (README, "Performance").
        telemetry_rollup(now=now)
    return TownsResult(ticks=ticks)
