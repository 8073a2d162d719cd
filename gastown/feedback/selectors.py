"""Reads for the feedback check."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F, Q

from beads.models import ACTIVE_MR_STATES, MergeRequest
from gastown.models import Convoy, EffectiveSettings, Rig, Town
from gastown.models.convoys import TERMINAL_CONVOY_STATUSES

#: At most this many MRs per town and pass; the oldest checks go first, so none starves.
MAX_DUE_PER_PASS = 1000


def merge_requests_due(
    *, town: Town, now: datetime, limit: int = MAX_DUE_PER_PASS
) -> list[MergeRequest]:
    """Rule R1 (see due_for_check)."""
    return due_for_check(town=town, now=now, limit=limit)[0]


def due_for_check(
    *, town: Town, now: datetime, limit: int = MAX_DUE_PER_PASS
) -> tuple[list[MergeRequest], timedelta, dict[int | None, EffectiveSettings]]:
    """Rule R1: the town's MRs with a PR whose bead is not terminal, and the failed landing
    MRs a convoy holds as its respawn suppression, that are due for a check: never checked,
    last checked at least one (effective) poll interval ago, or asked for by a webhook or a
    re-check (check_requested_at). Also returns the town's shortest poll interval and the
    effective settings by rig id (None: the town's own), which the check reuses.

    Two queries whatever the number of MRs: the rigs (for their poll intervals), then the
    candidates with their bead and rig. The SQL filter uses the shortest interval of the
    town; each MR's own rig interval is applied on the rows read.
    """
    rigs = list(Rig.objects.filter(town=town))
    settings_by_rig: dict[int | None, EffectiveSettings] = {None: town.effective(None)}
    for rig in rigs:
        settings_by_rig[rig.pk] = town.effective(rig)
    shortest = min(s.poll_interval for s in settings_by_rig.values())

    suppressed = (
        Convoy.objects.filter(
            town=town, respawn_suppressed_since__isnull=False, suppressed_landing_mr__isnull=False
        )
        .exclude(status__in=TERMINAL_CONVOY_STATUSES)
        .values("suppressed_landing_mr_id")
    )
    candidates = (
        MergeRequest.objects.filter(bead__town=town)
        .exclude(pr_url="")
        .filter(Q(state__in=ACTIVE_MR_STATES) | Q(pk__in=suppressed))
        .filter(
            Q(last_checked_at__isnull=True)
            | Q(last_checked_at__lte=now - shortest)
            | Q(check_requested_at__isnull=False)
        )
        .select_related("bead", "bead__rig", "merge_refusal")
        .order_by(
            F("check_requested_at").asc(nulls_last=True),
            F("last_checked_at").asc(nulls_first=True),
            "pk",
        )
    )
    due: list[MergeRequest] = []
    for mr in candidates[: limit * 2]:
        interval = settings_by_rig.get(mr.bead.rig_id, settings_by_rig[None]).poll_interval
        if _is_due(mr, now=now, interval=interval):
            due.append(mr)
            if len(due) >= limit:
                break
    return due, shortest, settings_by_rig


def _is_due(mr: MergeRequest, *, now: datetime, interval: timedelta) -> bool:
    if mr.check_requested_at is not None or mr.last_checked_at is None:
        return True
    return mr.last_checked_at <= now - interval
