"""Reads for the feedback check."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F, Min, Q, QuerySet

from beads.models import (
    ACTIVE_MR_STATES,
    SAFETY_NET_BLOCKERS,
    MergeRequest,
    check_interval,
    due_after,
)
from gastown.models import Convoy, EffectiveSettings, Rig, Town
from gastown.models.convoys import TERMINAL_CONVOY_STATUSES

#: A PR that waits on a person is read in full (GraphQL) at least this many safety nets
#: apart; in between, a conditional REST request answered 304 confirms it did not change.
#: The REST representation does not show check runs or threads, so a check re-run or a
#: thread resolved without a webhook is seen within this many safety nets.
FULL_READ_EVERY = 6

#: No cap unless the caller gives one (the check passes its token budget, budget.py).
UNLIMITED = 10**9


def merge_requests_due(*, town: Town, now: datetime, limit: int = UNLIMITED) -> list[MergeRequest]:
    """Rule R1 (see due_for_check)."""
    return due_for_check(town=town, now=now, limit=limit)[0]


def due_for_check(
    *,
    town: Town,
    now: datetime,
    limit: int = UNLIMITED,
    conditional_limit: int = UNLIMITED,
) -> tuple[list[MergeRequest], timedelta, dict[int | None, EffectiveSettings]]:
    """Rule R1: the town's MRs with a PR whose bead is not terminal, and the failed landing
    MRs a convoy holds as its respawn suppression, that are due for a check: never checked,
    asked for by a webhook or a re-check (check_requested_at), or last checked at least
    their check interval ago: the (effective) poll interval, or the safety net for a PR that
    waits on a person (beads.models.check_interval). Also returns the town's shortest poll
    interval and the effective settings by rig id (None: the town's own), which the check
    reuses.

    At most `limit` of them to read in full and `conditional_limit` that a conditional
    request may confirm unchanged (may_ask_conditionally), webhook-requested first, then
    the longest unchecked, so none starves when the budget runs short.

    Two queries whatever the number of MRs: the rigs (for their poll intervals), then the
    candidates with their bead and rig. The SQL filter uses the shortest intervals of the
    town; each MR's own rig interval is applied on the rows read.
    """
    candidates, shortest, settings_by_rig = _candidates(town=town, now=now)
    due: list[MergeRequest] = []
    reads = conditional = 0
    for mr in candidates[: (limit + conditional_limit) * 2]:
        settings = settings_by_rig.get(mr.bead.rig_id, settings_by_rig[None])
        if not is_due(mr, now=now, settings=settings):
            continue
        if may_ask_conditionally(mr, now=now, settings=settings):
            if conditional >= conditional_limit:
                continue
            conditional += 1
        else:
            if reads >= limit:
                continue
            reads += 1
        due.append(mr)
        if reads >= limit and conditional >= conditional_limit:
            break
    return due, shortest, settings_by_rig


def any_due(*, town: Town, now: datetime) -> bool:
    """Whether due_for_check may find anything (two small queries): a quiet town's pass
    stops here, before its credential and budget are looked up."""
    return _candidates(town=town, now=now)[0].exists()


def next_due(*, town: Town) -> datetime | None:
    """When the town's next watched PR falls due by its cadence (None: it watches none). One
    query; a webhook or a re-check makes a PR due sooner, and queues its own check."""
    watched, shortest, safety_net, waits_on_a_person, _ = _watched(town=town)
    first = watched.aggregate(
        polled=Min("last_checked_at", filter=~waits_on_a_person),
        netted=Min("last_checked_at", filter=waits_on_a_person),
    )
    moments = [
        checked + due_after(interval)
        for checked, interval in ((first["polled"], shortest), (first["netted"], safety_net))
        if checked is not None
    ]
    return min(moments, default=None)


def _candidates(
    *, town: Town, now: datetime
) -> tuple[QuerySet[MergeRequest], timedelta, dict[int | None, EffectiveSettings]]:
    watched, shortest, safety_net, waits_on_a_person, settings_by_rig = _watched(town=town)
    candidates = (
        watched.filter(
            Q(last_checked_at__isnull=True)
            | Q(check_requested_at__isnull=False)
            | (~waits_on_a_person & Q(last_checked_at__lte=now - due_after(shortest)))
            | (waits_on_a_person & Q(last_checked_at__lte=now - due_after(safety_net)))
        )
        .select_related("bead", "bead__rig", "merge_refusal")
        .order_by(
            F("check_requested_at").asc(nulls_last=True),
            F("last_checked_at").asc(nulls_first=True),
            "pk",
        )
    )
    return candidates, shortest, settings_by_rig


def _watched(
    *, town: Town
) -> tuple[QuerySet[MergeRequest], timedelta, timedelta, Q, dict[int | None, EffectiveSettings]]:
    """The town's MRs with a PR to watch, its shortest poll interval and safety net, what
    waits on a person (read at the safety net), and each rig's settings."""
    rigs = list(Rig.objects.filter(town=town))
    settings_by_rig: dict[int | None, EffectiveSettings] = {None: town.effective(None)}
    for rig in rigs:
        settings_by_rig[rig.pk] = town.effective(rig)
    shortest = min(s.poll_interval for s in settings_by_rig.values())
    safety_net = max(shortest, settings_by_rig[None].safety_net)

    suppressed = (
        Convoy.objects.filter(
            town=town, respawn_suppressed_since__isnull=False, suppressed_landing_mr__isnull=False
        )
        .exclude(status__in=TERMINAL_CONVOY_STATUSES)
        .values("suppressed_landing_mr_id")
    )
    waits_on_a_person = Q(
        blocker__in=SAFETY_NET_BLOCKERS,
        consecutive_transient_failures=0,
        consecutive_malformed_failures=0,
    )
    watched = (
        MergeRequest.objects.filter(bead__town=town)
        .exclude(pr_url="")
        .filter(Q(state__in=ACTIVE_MR_STATES) | Q(pk__in=suppressed))
    )
    return watched, shortest, safety_net, waits_on_a_person, settings_by_rig


def is_due(mr: MergeRequest, *, now: datetime, settings: EffectiveSettings) -> bool:
    if mr.check_requested_at is not None or mr.last_checked_at is None:
        return True
    return mr.last_checked_at <= now - check_interval(
        mr.blocker,
        failing=bool(mr.consecutive_transient_failures or mr.consecutive_malformed_failures),
        poll_interval=settings.poll_interval,
        safety_net=settings.safety_net,
    )


def may_ask_conditionally(mr: MergeRequest, *, now: datetime, settings: EffectiveSettings) -> bool:
    """A PR that waits on a person, is due only for the safety net (no webhook asked for
    it), has an ETag from before its snapshot, and was read in full less than
    FULL_READ_EVERY safety nets ago: GitHub can say "not modified" for free."""
    if mr.check_requested_at is not None or not mr.pr_etag or mr.snapshot_at is None:
        return False
    if settings.safety_net <= settings.poll_interval:
        return False  # no safety net (no webhooks): every check is a full read
    failing = bool(mr.consecutive_transient_failures or mr.consecutive_malformed_failures)
    if mr.blocker not in SAFETY_NET_BLOCKERS or failing:
        return False
    return mr.snapshot_at > now - settings.safety_net * FULL_READ_EVERY
