"""Reads for the dashboard. Every function runs a fixed number of queries, whatever the
number of beads, PRs or events in the town (tests/dashboard/test_queries.py holds them to it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    Count,
    Exists,
    F,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
)
from django.http import Http404
from django.utils import timezone

from beads.models import (
    ACTIVE_MR_STATES,
    ACTIVE_STATUSES,
    Bead,
    BeadEvent,
    BeadStatus,
    BeadType,
    Blocker,
    MergeRequest,
)
from gastown.dashboard.charts import wait_weeks_first
from gastown.dashboard.telemetry_words import telemetry_sentence
from gastown.models import Convoy, ConvoyStatus, ReconcilerTick, Rig, TelemetryEvent, Town
from gastown.models.convoys import TERMINAL_CONVOY_STATUSES
from gastown.services.telemetry import ALL_WAITS, NOBODY_NAMED, TelemetryDays, telemetry_days

#: The newest tick younger than this means the workers are running.
WORKERS_ALIVE_WINDOW = timedelta(minutes=2)


# --- towns ------------------------------------------------------------------------------


def town_list_for_user(*, user: Any) -> QuerySet[Town]:
    """Towns the user is a member of (directly or through a group); superusers see all."""
    towns = Town.objects.all()
    if not user.is_superuser:
        towns = towns.filter(
            Q(member_users=user) | Q(member_groups__in=user.groups.all())
        ).distinct()
    return towns.order_by("name")


def town_get_for_user(*, user: Any, slug: str) -> Town:
    """The town, or 404 when it does not exist or the user is not a member (no hint which)."""
    town = town_list_for_user(user=user).filter(slug=slug).first()
    if town is None:
        raise Http404("No such town.")
    return town


# --- overview ---------------------------------------------------------------------------


@dataclass
class Overview:
    bead_counts: list[dict[str, Any]]  # one row per type: {"type", "label", "counts", "total"}
    statuses: list[tuple[str, str]]
    awaiting_count: int
    oldest_wait_since: datetime | None
    suppressed_now: list[Convoy]
    suppressed_today: int
    #: Beads failed in the last 24 h whose work is still not done (made_good excluded).
    failures_24h: int
    recent_failures: list[Bead]
    open_escalations: int
    escalations: list[Bead]
    last_tick: ReconcilerTick | None
    workers_alive: bool
    now: datetime = field(default_factory=timezone.now)
    #: Failed in the last 24 h, but done since: their issue merged, or their convoy landed.
    failures_made_good: int = 0
    #: What went well in the last 24 h.
    merged_24h: int = 0
    landed_24h: int = 0
    #: Whom the waiting PRs wait on, the longest-kept first, and the oldest waits.
    reviewers: list[ReviewerWaits] = field(default_factory=list)
    oldest_waits: list[Wait] = field(default_factory=list)


def start_of_day(now: datetime) -> datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


#: A failed bead whose work was done after all: its convoy landed (the landing MR's too), or
#: the issue a failed MR was landing closed (a later MR, re-dispatched, merged). Such a
#: failure is history, not something for the team lead to act on.
FAILURE_MADE_GOOD = (
    Q(convoy__status=ConvoyStatus.LANDED)
    | Q(merge_request__landing_convoy__status=ConvoyStatus.LANDED)
    | Q(merge_request__source__status=BeadStatus.CLOSED)
    | Q(merge_request__source__convoy__status=ConvoyStatus.LANDED)
)


def town_overview(*, town: Town, now: datetime | None = None) -> Overview:
    now = now or timezone.now()
    rows = Bead.objects.filter(town=town).values("type", "status").annotate(n=Count("id"))
    grid: dict[str, dict[str, int]] = {t: {} for t in BeadType.values}
    for row in rows:
        grid.setdefault(row["type"], {})[row["status"]] = row["n"]
    bead_counts = [
        {
            "type": bead_type,
            "label": label,
            "counts": [grid[bead_type].get(status, 0) for status in BeadStatus.values],
            "total": sum(grid[bead_type].values()),
        }
        for bead_type, label in BeadType.choices
    ]
    awaiting = _awaiting_base(town).aggregate(n=Count("id"), oldest=Min("waiting_since"))
    day_ago = now - timedelta(hours=24)
    failed = Bead.objects.filter(town=town, status=BeadStatus.FAILED, closed_at__gte=day_ago)
    # One row per failed bead: each join is to at most one row (FKs, the MR's one-to-one).
    failures = failed.aggregate(n=Count("id"), made_good=Count("id", filter=FAILURE_MADE_GOOD))
    standing = failed.exclude(FAILURE_MADE_GOOD)
    escalations = Bead.objects.filter(
        town=town, type=BeadType.ESCALATION, status__in=ACTIVE_STATUSES
    )
    last_tick = ReconcilerTick.objects.filter(town=town).order_by("-started_at").first()
    reviewers, oldest_waits = _overview_waits(town, now)
    return Overview(
        reviewers=reviewers,
        oldest_waits=oldest_waits,
        bead_counts=bead_counts,
        statuses=list(BeadStatus.choices),
        awaiting_count=awaiting["n"],
        oldest_wait_since=awaiting["oldest"],
        suppressed_now=list(
            _suppressed_convoys().filter(town=town).order_by("respawn_suppressed_since")[:20]
        ),
        suppressed_today=TelemetryEvent.objects.filter(
            town=town, name="reconciler.respawn_suppressed", created_at__gte=start_of_day(now)
        ).count(),
        failures_24h=failures["n"] - failures["made_good"],
        failures_made_good=failures["made_good"],
        recent_failures=list(standing.order_by("-closed_at")[:5]),
        merged_24h=MergeRequest.objects.filter(bead__town=town, merged_at__gte=day_ago).count(),
        landed_24h=Convoy.objects.filter(
            town=town, status=ConvoyStatus.LANDED, landed_at__gte=day_ago
        ).count(),
        open_escalations=escalations.count(),
        escalations=list(escalations.order_by("-created_at")[:5]),
        last_tick=last_tick,
        workers_alive=bool(last_tick and now - last_tick.started_at < WORKERS_ALIVE_WINDOW),
        now=now,
    )


# --- awaiting approval ------------------------------------------------------------------


def _suppressed_convoys() -> QuerySet[Convoy]:
    # A terminal convoy's suppression is over whatever its row says (convoy_close ends it;
    # older rows may still carry one): the reconciler never looks at that convoy again.
    return Convoy.objects.filter(respawn_suppressed_since__isnull=False).exclude(
        status__in=TERMINAL_CONVOY_STATUSES
    )


def _awaiting_base(town: Town) -> QuerySet[MergeRequest]:
    # A failed MR keeps its last snapshot, so only live MRs are listed, plus the failed landing
    # MR a suppression holds: its PR is open and still waits for the reviewer the team lead
    # has to chase.
    held = _suppressed_convoys().filter(town=town).values("suppressed_landing_mr")
    return MergeRequest.objects.filter(bead__town=town, blocker=Blocker.HUMAN_REVIEW).filter(
        Q(state__in=ACTIVE_MR_STATES) | Q(pk__in=held)
    )


def awaiting_approval_list(
    *, town: Town, rig: int | None = None, convoy: int | None = None
) -> QuerySet[MergeRequest]:
    mrs = _awaiting_base(town)
    if rig:
        mrs = mrs.filter(bead__rig_id=rig)
    if convoy:
        # An issue's MR belongs to the convoy through its source issue.
        mrs = mrs.filter(
            Q(bead__convoy_id=convoy) | Q(source__convoy_id=convoy) | Q(landing_convoy_id=convoy)
        )
    held = _suppressed_convoys().filter(suppressed_landing_mr=OuterRef("pk"))
    return (
        mrs.select_related(
            "bead", "bead__rig", "bead__convoy", "bead__town", "landing_convoy", "source__convoy"
        )
        .annotate(held=Exists(held))
        .order_by("waiting_since", "pk")
    )


# --- waiting on whom ---------------------------------------------------------------------

#: At most this many waiting PRs are grouped on one page (the oldest first).
WAITS_LIMIT = 500


@dataclass
class Wait:
    """One PR waiting on people: its MR (with bead, rig, convoy and agent loaded), how long,
    and whether that is past the town's (or the rig's) human-wait threshold. The overview's
    groups hold light ones (see `_overview_waits`): the MR's id, waiting_since and reviewers
    only, no convoy or agent."""

    mr: MergeRequest
    convoy: Convoy | None
    agent_name: str
    waited: timedelta | None
    threshold: timedelta
    overdue: bool


@dataclass
class ReviewerWaits:
    """Everything waiting on one person or team (requested reviewers and code owners, as the
    PR's last snapshot names them), oldest wait first."""

    who: str
    waits: list[Wait]

    @property
    def count(self) -> int:
        return len(self.waits)

    @property
    def overdue(self) -> int:
        return sum(1 for w in self.waits if w.overdue)

    @property
    def oldest(self) -> Wait | None:
        # Not simply the first: databases order a missing waiting_since differently.
        return max(self.waits, key=lambda w: w.waited or timedelta(0), default=None)


def _timed_wait(
    mr: MergeRequest,
    now: datetime,
    threshold: timedelta,
    *,
    convoy: Convoy | None = None,
    agent_name: str = "",
) -> Wait:
    waited = now - mr.waiting_since if mr.waiting_since else None
    return Wait(
        mr=mr,
        convoy=convoy,
        agent_name=agent_name,
        waited=waited,
        threshold=threshold,
        overdue=waited is not None and waited >= threshold,
    )


def _wait(mr: MergeRequest, town: Town, now: datetime) -> Wait:
    source = mr.source
    agent = (source.assignee if source is not None else None) or mr.bead.assignee
    threshold = town.effective(mr.bead.rig).human_wait_escalation
    name = agent.name if agent is not None else ""
    return _timed_wait(mr, now, threshold, convoy=mr.convoy, agent_name=name)


def _waits_list(town: Town) -> QuerySet[MergeRequest]:
    """The PRs awaiting approval with everything a wait's row shows, oldest first."""
    return awaiting_approval_list(town=town).select_related(
        "bead__assignee", "source", "source__assignee"
    )


def _by_reviewer(waits: Iterable[Wait]) -> list[ReviewerWaits]:
    """The waits grouped by whom they wait on, the longest-kept person first (a PR asking
    two reviewers is under both; one asking nobody by name under NOBODY_NAMED)."""
    groups: dict[str, list[Wait]] = {}
    for wait in waits:
        names = [r for r in wait.mr.requested_reviewers or [] if isinstance(r, str) and r]
        for who in dict.fromkeys(names) or [NOBODY_NAMED]:
            groups.setdefault(who, []).append(wait)
    return sorted(
        (ReviewerWaits(who=who, waits=waits) for who, waits in groups.items()),
        key=lambda g: (-(g.oldest.waited or timedelta(0)) if g.oldest else timedelta(0), g.who),
    )


def waits_by_reviewer(*, town: Town, now: datetime | None = None) -> list[ReviewerWaits]:
    """The PRs awaiting approval grouped by whom they wait on, the longest-kept person first
    (a PR asking two reviewers is under both). One query, whatever the number of PRs."""
    now = now or timezone.now()
    return _by_reviewer(_wait(mr, town, now) for mr in _waits_list(town)[:WAITS_LIMIT])


#: The overview lists this many of the oldest waits in full.
OLDEST_WAITS = 5


def _overview_waits(town: Town, now: datetime) -> tuple[list[ReviewerWaits], list[Wait]]:
    """The overview's "waiting on whom": the same groups as `waits_by_reviewer` (the same
    WAITS_LIMIT oldest PRs), built from light MRs (id, waiting_since, requested_reviewers and
    the rig's threshold: no bead, convoy or agent, which the counts do not show), and the
    OLDEST_WAITS longest waits loaded in full. Three queries, whatever the number of PRs."""
    thresholds = {None: town.effective().human_wait_escalation} | {
        rig.pk: town.effective(rig).human_wait_escalation for rig in town_rigs(town=town)
    }
    light = (
        _awaiting_base(town)
        .order_by("waiting_since", "pk")
        .only("id", "waiting_since", "requested_reviewers")
        .annotate(rig_id=F("bead__rig_id"))[:WAITS_LIMIT]
    )
    waits = [_timed_wait(mr, now, thresholds[mr.rig_id]) for mr in light]
    # Stable: equal waits keep the list's order (waiting_since, then id).
    oldest = sorted(waits, key=lambda w: -(w.waited or timedelta(0)))[:OLDEST_WAITS]
    ids = [w.mr.pk for w in oldest]
    full = {mr.pk: _wait(mr, town, now) for mr in _waits_list(town).filter(pk__in=ids)}
    # A PR that stopped waiting between the two reads is left out.
    return _by_reviewer(waits), [full[pk] for pk in ids if pk in full]


def town_rigs(*, town: Town) -> list[Rig]:
    return list(Rig.objects.filter(town=town).order_by("name"))


def town_convoy_choices(*, town: Town) -> list[Convoy]:
    """Convoys worth filtering by: the active ones."""
    return list(
        Convoy.objects.filter(town=town)
        .exclude(status__in=["landed", "closed", "failed"])
        .only("id", "title")
        .order_by("title")[:200]
    )


# --- convoys ----------------------------------------------------------------------------


def convoy_list(*, town: Town, status: str = "") -> QuerySet[Convoy]:
    """The town's convoys, newest first; `convoy_list_counts` adds the counts to one page."""
    convoys = Convoy.objects.filter(town=town)
    if status == "active":
        convoys = convoys.filter(status__in=["open", "ready_to_land", "landing"])
    elif status:
        convoys = convoys.filter(status=status)
    return (
        convoys.select_related("rig", "suppressed_landing_mr", "suppressed_landing_mr__bead")
        .prefetch_related(
            Prefetch(
                "landing_merge_requests",
                # The one in flight, or for a landed convoy the one that merged.
                queryset=MergeRequest.objects.filter(
                    Q(state__in=ACTIVE_MR_STATES) | Q(merged_at__isnull=False)
                )
                .select_related("bead")
                .order_by("-pk"),
                to_attr="active_landing",
            )
        )
        .order_by("-created_at", "-pk")
    )


def convoy_list_counts(convoys: Sequence[Convoy]) -> None:
    """Attach `issues_total`, `issues_closed` and `waiting_count` (its PRs, the beads' and
    the landing one, waiting on people now) to one page of convoys, in two queries. Counted
    for the page only: as annotations of the list they ran for every convoy of the town
    before the pager cut (README, "Performance")."""
    ids = [c.pk for c in convoys]
    issues = (
        Bead.objects.filter(convoy_id__in=ids, type=BeadType.ISSUE)
        .order_by()
        .values("convoy_id")
        .annotate(total=Count("pk"), closed=Count("pk", filter=Q(status=BeadStatus.CLOSED)))
    )
    by_convoy = {row["convoy_id"]: row for row in issues}
    waiting_mrs = MergeRequest.objects.filter(
        blocker=Blocker.HUMAN_REVIEW, state__in=ACTIVE_MR_STATES
    ).order_by()
    # Two arms of a union, each on its own index (the source bead's convoy, the landing
    # convoy), where one OR across the join read every merge request.
    arms = waiting_mrs.filter(source__convoy_id__in=ids).values_list("pk", "source__convoy_id")
    landing = waiting_mrs.filter(landing_convoy_id__in=ids).values_list("pk", "landing_convoy_id")
    waiting: dict[int, set[int]] = {}
    for mr_id, convoy_id in arms.union(landing):
        waiting.setdefault(convoy_id, set()).add(mr_id)
    for convoy in convoys:
        row = by_convoy.get(convoy.pk, {})
        convoy.issues_total = row.get("total", 0)  # type: ignore[attr-defined]
        convoy.issues_closed = row.get("closed", 0)  # type: ignore[attr-defined]
        convoy.waiting_count = len(waiting.get(convoy.pk, ()))  # type: ignore[attr-defined]


@dataclass
class ConvoyDetail:
    convoy: Convoy
    beads: Sequence[Bead]  # its issue beads, each with `.mrs`: its merge requests, newest first
    landing_mrs: Sequence[MergeRequest]  # every landing attempt, newest first
    waits: list[Wait]  # its PRs waiting on people now, oldest first
    suppressions: list[TelemetryEvent]  # suppressions begun and ended, newest first
    timeline: list[TelemetryEvent]  # everything recorded about it, newest first


CONVOY_BEADS_LIMIT = 200


def convoy_get(*, town: Town, pk: int) -> Convoy:
    convoy = Convoy.objects.filter(town=town, pk=pk).select_related("rig", "town").first()
    if convoy is None:
        raise Http404("No such convoy in this town.")
    return convoy


def convoy_detail(*, convoy: Convoy, now: datetime | None = None) -> ConvoyDetail:
    """A convoy's beads, MRs and PRs with their waits, landing attempts, suppression history
    and timeline, in a fixed number of queries."""
    now = now or timezone.now()
    held = _suppressed_convoys().filter(suppressed_landing_mr=OuterRef("pk"))
    mrs = MergeRequest.objects.select_related(
        "bead",
        "bead__rig",
        "bead__town",
        "bead__convoy",
        "bead__assignee",
        "source",
        "source__assignee",
    ).annotate(held=Exists(held))
    beads = list(
        Bead.objects.filter(convoy=convoy, type=BeadType.ISSUE)
        .select_related("assignee", "rig")
        .prefetch_related(Prefetch("merge_requests", queryset=mrs.order_by("-pk"), to_attr="mrs"))
        .order_by("created_at", "pk")[:CONVOY_BEADS_LIMIT]
    )
    landing_mrs = list(mrs.filter(landing_convoy=convoy).order_by("-pk")[:50])
    for mr in landing_mrs:
        mr.landing_convoy = convoy
    member_mrs = [mr for bead in beads for mr in bead.mrs]
    for bead in beads:
        for mr in bead.mrs:
            mr.source = bead
            bead.convoy = convoy
    waits = sorted(
        (
            _wait(mr, convoy.town, now)
            for mr in [*landing_mrs, *member_mrs]
            if mr.blocker == Blocker.HUMAN_REVIEW and (mr.is_active or getattr(mr, "held", False))
        ),
        key=lambda w: -(w.waited or timedelta(0)).total_seconds(),
    )
    events = TelemetryEvent.objects.filter(convoy=convoy).select_related("bead")
    return ConvoyDetail(
        convoy=convoy,
        beads=beads,
        landing_mrs=landing_mrs,
        waits=waits,
        suppressions=list(
            events.filter(name__startswith="reconciler.respawn_suppress").order_by(
                "-created_at", "-id"
            )[:50]
        ),
        timeline=list(events.order_by("-created_at", "-id")[:TIMELINE_LIMIT]),
    )


# --- bead detail ------------------------------------------------------------------------


@dataclass
class TimelineEntry:
    at: datetime
    source: str  # "bead" or "telemetry"
    title: str
    actor: str
    note: str
    data: dict[str, Any]
    is_override: bool = False


TIMELINE_LIMIT = 200


def bead_get(*, town: Town, pk: int) -> Bead:
    bead = (
        Bead.objects.filter(town=town, pk=pk)
        .select_related("rig", "convoy", "assignee", "parent", "town")
        .first()
    )
    if bead is None:
        raise Http404("No such bead in this town.")
    return bead


def bead_merge_request(*, bead: Bead) -> MergeRequest | None:
    return (
        MergeRequest.objects.filter(bead=bead)
        .select_related("source", "source__convoy", "landing_convoy", "bead", "bead__town")
        .annotate(held=Exists(_suppressed_convoys().filter(suppressed_landing_mr=OuterRef("pk"))))
        .first()
    )


def bead_timeline(*, bead: Bead, limit: int = TIMELINE_LIMIT) -> list[TimelineEntry]:
    """Its bead events and its telemetry, newest first (the newest `limit` of each)."""
    entries = [
        TimelineEntry(
            at=event.created_at,
            source="bead",
            title=event.get_kind_display()
            + (f": {event.from_status or '—'} → {event.to_status}" if event.to_status else ""),
            actor=event.actor,
            note=event.note,
            data=event.data or {},
            is_override=event.kind == "override",
        )
        for event in BeadEvent.objects.filter(bead_ref=bead.pk, town_id=bead.town_id)
        .order_by("-created_at", "-id")
        .only("created_at", "kind", "from_status", "to_status", "actor", "note", "data")[:limit]
    ]
    entries += [
        TimelineEntry(
            at=event.created_at,
            source="telemetry",
            title=telemetry_sentence(
                name=event.name, label=event.label, reason=event.reason, data=event.data
            ),
            actor="",
            note="",
            # What the sentence was made from, as recorded (domain.md §6), in the details.
            data={
                "event": event.name,
                **({"label": event.label} if event.label else {}),
                **({"reason": event.reason} if event.reason else {}),
                **({"duration_ms": event.duration_ms} if event.duration_ms is not None else {}),
                **(event.data or {}),
            },
        )
        # override.* telemetry repeats the bead event above; the timeline shows it once.
        for event in TelemetryEvent.objects.filter(bead=bead)
        .exclude(name__startswith="override.")
        .order_by("-created_at", "-id")
        .only("created_at", "name", "label", "reason", "duration_ms", "data")[:limit]
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


def bead_children(*, bead: Bead) -> list[Bead]:
    return list(Bead.objects.filter(parent=bead).order_by("-created_at")[:50])


# --- telemetry --------------------------------------------------------------------------


#: Wait-duration buckets (upper bound in ms, label).
WAIT_BUCKETS: list[tuple[int | None, str]] = [
    (15 * 60_000, "< 15 min"),
    (60 * 60_000, "15-60 min"),
    (4 * 3_600_000, "1-4 h"),
    (24 * 3_600_000, "4-24 h"),
    (3 * 86_400_000, "1-3 days"),
    (None, "> 3 days"),
]


@dataclass
class TelemetryCharts:
    days: list[date]
    per_day: dict[str, list[int]]
    wait_buckets: list[tuple[str, int]]
    data: TelemetryDays  # what the per-week and per-reviewer wait charts read too


CHART_NAMES = [
    "pr.awaiting_approval_detected",
    "pr.awaiting_approval_resolved",
    "reconciler.respawn_suppressed",
    "pr.merged",
    "pr.merge_refused",
]


def _bucket(ms: int) -> int:
    for index, (upper, _label) in enumerate(WAIT_BUCKETS):
        if upper is None or ms < upper:
            return index
    return len(WAIT_BUCKETS) - 1


def telemetry_charts(*, town: Town, days: int = 14, now: datetime | None = None) -> TelemetryCharts:
    """The per-day counts and the wait buckets of the last `days` days, and the waits of the
    last eight weeks, from the daily rollup and today's events (a fixed number of queries)."""
    now = now or timezone.now()
    first = timezone.localdate(now) - timedelta(days=days - 1)
    data = telemetry_days(
        town_id=town.pk, first=min(first, wait_weeks_first(now)), names=CHART_NAMES, now=now
    )
    day_list = [first + timedelta(days=i) for i in range(days)]
    per_day = {name: [data.counts[name].get(d, 0) for d in day_list] for name in CHART_NAMES}
    by_bucket = [0] * len(WAIT_BUCKETS)
    for day, durations in data.waits.get(ALL_WAITS, {}).items():
        if day >= first:
            for ms in durations:
                by_bucket[_bucket(ms)] += 1
    return TelemetryCharts(
        days=day_list,
        per_day=per_day,
        wait_buckets=[(label, by_bucket[i]) for i, (_u, label) in enumerate(WAIT_BUCKETS)],
        data=data,
    )


def telemetry_list(
    *,
    town: Town,
    name: str = "",
    rig: int | None = None,
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[TelemetryEvent]:
    events = TelemetryEvent.objects.filter(town=town)
    if name:
        events = (
            events.filter(name=name)
            if not name.endswith(".")
            else events.filter(name__startswith=name)
        )
    if rig:
        events = events.filter(rig_id=rig)
    if since:
        events = events.filter(created_at__date__gte=since)
    if until:
        events = events.filter(created_at__date__lte=until)
    return events.select_related("rig", "bead", "convoy").order_by("-created_at", "-id")


def telemetry_names(*, town: Town | None) -> list[str]:
    """The event names of a town (None: of every town), at most 100, in order. A loose index
    scan: one probe of the (town, name, created_at) index, or of the name index, per name,
    where SELECT DISTINCT read every event (1M rows: README, "Performance")."""
    table = TelemetryEvent._meta.db_table
    in_town = "town_id = %s AND" if town is not None else ""
    sql = f"""
        WITH RECURSIVE names(name) AS (
            SELECT MIN(name) FROM {table} WHERE {in_town} TRUE
            UNION ALL
            SELECT (SELECT MIN(t.name) FROM {table} t WHERE {in_town} t.name > n.name)
            FROM names n WHERE n.name IS NOT NULL
        )
        SELECT name FROM names WHERE name IS NOT NULL LIMIT 100
    """
    params = [town.pk, town.pk] if town is not None else []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


# --- reconciler -------------------------------------------------------------------------


def tick_list(*, town: Town) -> QuerySet[ReconcilerTick]:
    return ReconcilerTick.objects.filter(town=town).order_by("-started_at", "-id").defer("plan")


def tick_last(*, town: Town) -> ReconcilerTick | None:
    """The town's latest tick with what it planned (one probe of `tick_town_started`)."""
    return ReconcilerTick.objects.filter(town=town).order_by("-started_at", "-id").first()
