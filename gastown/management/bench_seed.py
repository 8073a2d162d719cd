"""Seed a realistic town for `manage.py bench` with bulk inserts (no services: speed over
audit; the rows are what the services would leave behind)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from beads.models import (
    Bead,
    BeadDependency,
    BeadStatus,
    BeadType,
    Blocker,
    DependencyKind,
    MergeRequest,
    MergeRequestState,
    Priority,
)
from gastown.models import Agent, Convoy, Rig, TelemetryEvent, Town
from gastown.models.agents import AgentRole, AgentStatus
from gastown.models.convoys import ConvoyStatus
from gastown.models.towns import MergeMode

BATCH = 2000
RIGS = 4
TELEMETRY_NAMES = (
    "agent.dispatched",
    "agent.dispatch_failed",
    "agent.heartbeat",
    "bead.closed",
    "convoy.transition",
    "convoy.landed",
    "pr.checked",
    "pr.awaiting_approval",
    "pr.awaiting_approval_resolved",
    "pr.merged",
    "reconciler.tick",
    "override.recheck",
)
PRIORITIES = (Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.MEDIUM, Priority.LOW)


@dataclass
class SeededTown:
    town: Town
    active: int
    closed: int
    telemetry: int
    some_bead_id: int


def seed_town(
    *, active: int, closed_ratio: int = 10, telemetry: int = 0, pr_repo: str = "bench/app"
) -> SeededTown:
    """A town with `active` non-terminal beads and `closed_ratio` times as many closed ones.

    Of the active beads: 60% open issues (a tenth blocked by another), 10% in progress (each
    hooked by a working polecat), 15% in review with an MR bead in progress whose PR is
    watched (a third of them wait on a human). Of the closed beads a third are merged MRs.
    One open convoy per 50 active beads, nine landed ones for each (holding the closed beads)."""
    tag = uuid.uuid4().hex[:8]
    town = Town.objects.create(
        slug=f"bench-{active}-{tag}", name=f"Bench {active} ({tag})", code_review=False
    )
    rigs = Rig.objects.bulk_create(
        Rig(town=town, name=f"rig-{i}", repo=f"{pr_repo}{i}") for i in range(RIGS)
    )
    convoys_open = max(1, active // 50)
    convoys = Convoy.objects.bulk_create(
        (
            Convoy(
                town=town,
                rig=rigs[i % RIGS],
                title=f"convoy {i}",
                merge_mode=MergeMode.REVIEW_AND_MERGE,
                status=ConvoyStatus.OPEN if i < convoys_open else ConvoyStatus.LANDED,
            )
            for i in range(convoys_open * 10)
        ),
        batch_size=BATCH,
    )
    open_convoys, closed_convoys = convoys[:convoys_open], convoys[convoys_open:]

    n_review = active * 15 // 100  # issue in review + its MR bead: 2 active beads each
    n_progress = active // 10
    n_open = max(0, active - 2 * n_review - n_progress)

    def issue(i: int, status: str) -> Bead:
        # A third of the beads are in a convoy: the closed ones in landed convoys.
        in_convoys = closed_convoys if status == BeadStatus.CLOSED else open_convoys
        return Bead(
            town=town,
            rig=rigs[i % RIGS],
            convoy=in_convoys[i % len(in_convoys)] if i % 3 == 0 else None,
            type=BeadType.ISSUE,
            status=status,
            title=f"Issue {i}: make the widget {i % 97} faster",
            body="Some description of the work.\n" * 5,
            priority=PRIORITIES[i % len(PRIORITIES)],
            labels=["bench"],
            metadata={"source": "bench"},
        )

    opened = Bead.objects.bulk_create(
        (issue(i, BeadStatus.OPEN) for i in range(n_open)), batch_size=BATCH
    )
    progress = Bead.objects.bulk_create(
        (issue(i, BeadStatus.IN_PROGRESS) for i in range(n_progress)), batch_size=BATCH
    )
    review = Bead.objects.bulk_create(
        (issue(i, BeadStatus.IN_REVIEW) for i in range(n_review)), batch_size=BATCH
    )
    BeadDependency.objects.bulk_create(
        (
            BeadDependency(
                bead=b, depends_on=progress[i % len(progress)], kind=DependencyKind.BLOCKS
            )
            for i, b in enumerate(opened[::10])
        )
        if progress
        else (),
        batch_size=BATCH,
    )
    Agent.objects.bulk_create(
        (
            Agent(
                town=town,
                rig=b.rig,
                role=AgentRole.POLECAT,
                name=f"polecat-bench-{i}",
                status=AgentStatus.WORKING,
                hooked_bead=b,
            )
            for i, b in enumerate(progress)
        ),
        batch_size=BATCH,
    )
    _merge_requests(town, review, state=MergeRequestState.IN_PROGRESS, pr_repo=pr_repo)

    n_closed = active * closed_ratio
    n_closed_mrs = n_closed // 3
    closed_issues = Bead.objects.bulk_create(
        (issue(i, BeadStatus.CLOSED) for i in range(n_closed - n_closed_mrs)), batch_size=BATCH
    )
    _merge_requests(
        town,
        closed_issues[:n_closed_mrs],
        state=MergeRequestState.MERGED,
        pr_repo=pr_repo,
    )
    _telemetry(town, rigs, telemetry)
    return SeededTown(
        town=town,
        active=n_open + n_progress + 2 * n_review,
        closed=n_closed,
        telemetry=telemetry,
        some_bead_id=(review or opened or closed_issues)[0].pk,
    )


def _merge_requests(town: Town, sources: list[Bead], *, state: str, pr_repo: str) -> None:
    live = state in (MergeRequestState.OPEN, MergeRequestState.IN_PROGRESS)
    mr_beads = Bead.objects.bulk_create(
        (
            Bead(
                town=town,
                rig=s.rig,
                convoy=s.convoy,
                type=BeadType.MERGE_REQUEST,
                status=BeadStatus.IN_PROGRESS if live else BeadStatus.CLOSED,
                title=f"MR for {s.title}",
            )
            for s in sources
        ),
        batch_size=BATCH,
    )
    now = timezone.now()
    MergeRequest.objects.bulk_create(
        (
            MergeRequest(
                bead=mb,
                source=s,
                state=state,
                branch=f"polecat/{s.pk}",
                target_branch="main",
                pr_url=f"https://github.com/{pr_repo}0/pull/{s.pk}",
                pr_state="OPEN" if live else "MERGED",
                blocker=(Blocker.HUMAN_REVIEW if live and i % 3 == 0 else ""),
                waiting_since=now if live and i % 3 == 0 else None,
                last_checked_at=now,
                merged_at=None if live else now,
            )
            for i, (s, mb) in enumerate(zip(sources, mr_beads, strict=True))
        ),
        batch_size=BATCH,
    )


def _telemetry(town: Town, rigs: list[Rig], count: int) -> None:
    """`count` events spread over the 90 days that prune keeps, a batch a day (created_at is
    stamped on insert, so each batch is moved back afterwards)."""
    now = timezone.now()
    for batch, start in enumerate(range(0, count, BATCH * 5)):
        created = TelemetryEvent.objects.bulk_create(
            (
                TelemetryEvent(
                    town=town,
                    rig=rigs[i % RIGS],
                    name=TELEMETRY_NAMES[i % len(TELEMETRY_NAMES)],
                    label=f"bench {i % 50}",
                    duration_ms=i % 1000,
                )
                for i in range(start, min(count, start + BATCH * 5))
            ),
            batch_size=BATCH,
        )
        ids = [e.pk for e in created if e.pk is not None]
        if ids:
            TelemetryEvent.objects.filter(town=town, pk__gte=min(ids), pk__lte=max(ids)).update(
                created_at=now - timedelta(days=batch % 90, minutes=batch)
            )


def seed_feedback_town(*, repo: str, pr_urls: list[str]) -> tuple[Town, list[int]]:
    """A town with one watched MR per PR URL, auto-merge off (the pass only checks)."""
    town = Town.objects.create(
        slug=f"bench-fb-{uuid.uuid4().hex[:8]}",
        name="Bench feedback",
        code_review=False,
        auto_merge=False,
    )
    rig = Rig.objects.create(town=town, name="fb", repo=repo)
    sources = Bead.objects.bulk_create(
        Bead(town=town, rig=rig, title=f"PR {i}", status=BeadStatus.IN_REVIEW)
        for i in range(len(pr_urls))
    )
    mr_beads = Bead.objects.bulk_create(
        Bead(
            town=town,
            rig=rig,
            title=f"MR {i}",
            type=BeadType.MERGE_REQUEST,
            status=BeadStatus.IN_PROGRESS,
        )
        for i in range(len(pr_urls))
    )
    mrs = MergeRequest.objects.bulk_create(
        MergeRequest(
            bead=bead,
            source=source,
            state=MergeRequestState.IN_PROGRESS,
            branch=f"b/{source.pk}",
            target_branch="main",
            pr_url=url,
        )
        for source, bead, url in zip(sources, mr_beads, pr_urls, strict=True)
    )
    return town, [mr.pk for mr in mrs]


def make_due(mr_ids: list[int]) -> None:
    """Every MR due again, so each measured pass checks them all."""
    MergeRequest.objects.filter(pk__in=mr_ids).update(last_checked_at=None, check_requested_at=None)
