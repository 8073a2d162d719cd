"""Read one town's snapshot from the database with a fixed number of queries (docs/domain.md
§3). The only reader the rules depend on; they see its result, never a queryset."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from beads.models import (
    ACTIVE_MR_STATES,
    ACTIVE_STATUSES,
    Bead,
    BeadDependency,
    BeadStatus,
    BeadType,
    DependencyKind,
    MergeRequest,
)
from gastown.models import Agent, Convoy, Rig, TelemetryEvent, Town
from gastown.models.convoys import ConvoyStatus
from gastown.reconciler.snapshot import TownSnapshot

#: Bead fields no rule reads (apply reloads each bead it writes): not read into the snapshot.
#: Building model instances is most of a tick's time (README, "Performance").
UNREAD_BEAD_FIELDS = ("body", "labels", "metadata", "failure_message", "created_by")


def load_snapshot(town: Town, now: datetime) -> TownSnapshot:
    rigs = {r.pk: r for r in Rig.objects.filter(town=town)}
    for rig in rigs.values():
        rig.town = town  # avoid a query per rig when resolving settings
    agents = list(Agent.objects.filter(town=town).order_by("created_at", "pk"))

    active_beads = list(
        Bead.objects.filter(town=town, status__in=ACTIVE_STATUSES).defer(*UNREAD_BEAD_FIELDS)
    )
    beads = {b.pk: b for b in active_beads}

    convoys = list(
        Convoy.objects.filter(
            town=town,
            status__in=[ConvoyStatus.OPEN, ConvoyStatus.READY_TO_LAND, ConvoyStatus.LANDING],
        )
    )
    convoy_ids = [c.pk for c in convoys]
    held_mr_ids = [c.suppressed_landing_mr_id for c in convoys if c.suppressed_landing_mr_id]

    # One query, each arm of the union on its own index: an OR across the MR and its beads
    # made PostgreSQL scan every MR and bead of the history (README, "Performance").
    mr_ids = (
        MergeRequest.objects.filter(state__in=ACTIVE_MR_STATES, bead__town=town)
        .values("pk")
        .union(
            MergeRequest.objects.filter(pk__in=held_mr_ids).values("pk"),
            MergeRequest.objects.filter(landing_convoy_id__in=convoy_ids).values("pk"),
            MergeRequest.objects.filter(
                source__town=town, source__status=BeadStatus.IN_REVIEW
            ).values("pk"),
        )
    )
    mr_rows = list(MergeRequest.objects.filter(pk__in=mr_ids))
    # An MR's bead is one instance per snapshot: most are live beads read above; the rest
    # (terminal ones) in one query, not a second copy of every MR bead (README, "Performance").
    missing = {mr.bead_id for mr in mr_rows} - beads.keys()
    beads.update((b.pk, b) for b in Bead.objects.filter(pk__in=missing).defer(*UNREAD_BEAD_FIELDS))
    for mr in mr_rows:
        mr.bead = beads[mr.bead_id]
    merge_requests = [m for m in mr_rows if m.is_active or m.pk in held_mr_ids]
    mrs_by_source: dict[int, list[MergeRequest]] = defaultdict(list)
    landing_mrs: dict[int, list[MergeRequest]] = defaultdict(list)
    for mr in mr_rows:
        if mr.source_id:
            mrs_by_source[mr.source_id].append(mr)
        if mr.landing_convoy_id:
            landing_mrs[mr.landing_convoy_id].append(mr)

    # A convoy's live members are live beads read above; only its terminal ones are read
    # here. Each list is in the beads' own order (newest first), as one query gave it.
    convoy_set = set(convoy_ids)
    members = [b for b in active_beads if b.convoy_id in convoy_set and b.type == BeadType.ISSUE]
    members += (
        Bead.objects.filter(convoy_id__in=convoy_ids, type=BeadType.ISSUE)
        .exclude(status__in=ACTIVE_STATUSES)
        .defer(*UNREAD_BEAD_FIELDS)
    )
    members.sort(key=lambda b: (b.created_at, b.pk), reverse=True)
    convoy_members: dict[int, list[Bead]] = defaultdict(list)
    for bead in members:
        convoy_members[bead.convoy_id].append(bead)  # type: ignore[index]
        beads.setdefault(bead.pk, bead)

    blockers_of: dict[int, list[int]] = defaultdict(list)
    blocker_ids: set[int] = set()
    deps = BeadDependency.objects.filter(
        bead__town=town, bead__status__in=ACTIVE_STATUSES, kind=DependencyKind.BLOCKS
    ).values_list("bead_id", "depends_on_id", "depends_on__status")
    blocker_terminal: dict[int, str] = {}
    for bead_id, depends_on_id, status in deps:
        blockers_of[bead_id].append(depends_on_id)
        blocker_ids.add(depends_on_id)
        blocker_terminal[depends_on_id] = status
    # Blockers that are already terminal are not in `beads`; remember their status.
    for bead_id, status in blocker_terminal.items():
        if bead_id not in beads:
            stub = Bead(pk=bead_id, town=town, status=status, title="")
            beads[bead_id] = stub

    open_escalation_keys = {
        key
        for key in Bead.objects.filter(
            town=town, type=BeadType.ESCALATION, status__in=ACTIVE_STATUSES
        ).values_list("metadata__escalation_key", flat=True)
        if key
    }
    town_settings = town.effective()
    failures = TelemetryEvent.objects.filter(
        town=town,
        name="agent.dispatch_failed",
        created_at__gte=now - town_settings.breaker_window,
    ).count()
    return TownSnapshot(
        town=town,
        now=now,
        rigs=rigs,
        agents=agents,
        beads=beads,
        merge_requests=merge_requests,
        mrs_by_source=dict(mrs_by_source),
        convoys=convoys,
        convoy_members=dict(convoy_members),
        landing_mrs=dict(landing_mrs),
        blockers_of=dict(blockers_of),
        open_escalation_keys=open_escalation_keys,
        dispatch_failures_recent=failures,
        settings_by_rig={None: town_settings},
    )
