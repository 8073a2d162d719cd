"""Writes to convoys: the one place a Convoy row changes (docs/architecture.md, "Layers").

The reconciler's apply step, the overrides, the API and the admin all call these, so the rules
that belong to a convoy — its feature branch's name, which status may follow which, how a
transition is audited, its respawn suppression (docs/domain.md §5) — are decided once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify

from beads.audit import Actor
from beads.merge_requests import merge_request_write
from beads.models import BeadEventKind, BeadStatus, Blocker, MergeRequest
from beads.services import bead_event_record
from gastown.models import Convoy, MergeMode, Rig, Town
from gastown.models.convoys import ConvoyStatus
from gastown.services.telemetry import duration_ms, telemetry_record

S = ConvoyStatus
#: Which status may follow which (docs/domain.md §2, §5). A landing convoy may "move" to
#: landing again: each new landing MR is a transition that counts its attempt.
CONVOY_TRANSITIONS: dict[str, frozenset[str]] = {
    S.OPEN: frozenset({S.READY_TO_LAND, S.LANDED, S.CLOSED}),
    S.READY_TO_LAND: frozenset({S.LANDING, S.LANDED, S.FAILED, S.CLOSED}),
    S.LANDING: frozenset({S.LANDING, S.LANDED, S.FAILED, S.CLOSED}),
    # A team lead may retry a failed convoy's landing (audited); nothing else leaves it.
    S.FAILED: frozenset({S.READY_TO_LAND}),
    S.LANDED: frozenset(),
    S.CLOSED: frozenset(),
}


class ConvoyTransitionRefused(Exception):
    """The convoy's status does not allow the transition, or it changed meanwhile."""


def convoy_feature_branch_name(convoy: Convoy) -> str:
    """`convoy/<id>-<slug of the title>` (`convoy/<id>` when the title has no letters): the
    id keeps it unique, the slug tells people which convoy a branch belongs to."""
    slug = slugify(convoy.title)[:40].strip("-")
    return f"convoy/{convoy.pk}-{slug}" if slug else f"convoy/{convoy.pk}"


def convoy_create(
    *,
    town: Town,
    title: str,
    actor: Actor,
    merge_mode: str = MergeMode.REVIEW_AND_MERGE,
    rig: Rig | None = None,
) -> Convoy:
    """A new open convoy. A review-then-land convoy names its rig (the feature branch's
    repository) and gets its branch name now, so done reports can target it; the branch
    itself is created from the default branch when the convoy starts."""
    if merge_mode == MergeMode.REVIEW_THEN_LAND and rig is None:
        raise ValueError(
            "A review-then-land convoy names its rig (the feature branch's repository)."
        )
    if rig is not None and rig.town_id != town.pk:
        raise ValueError("The convoy's rig must belong to the convoy's town.")
    with transaction.atomic():
        convoy = Convoy.objects.create(
            town=town, rig=rig, title=title, merge_mode=merge_mode, created_by=actor.label
        )
        if merge_mode == MergeMode.REVIEW_THEN_LAND:
            convoy_feature_branch_assign(convoy=convoy)
    return convoy


def convoy_feature_branch_assign(*, convoy: Convoy) -> str:
    """Give the convoy its feature branch's name if it has none (a row made in the admin, a
    fixture or the shell); the name is never changed once set."""
    if not convoy.feature_branch:
        name = convoy_feature_branch_name(convoy)
        Convoy.objects.filter(pk=convoy.pk, feature_branch="").update(feature_branch=name)
        convoy.feature_branch = (
            Convoy.objects.filter(pk=convoy.pk).values_list("feature_branch", flat=True).first()
            or name
        )
    return convoy.feature_branch


def convoy_feature_branch_created(*, convoy: Convoy, now: datetime) -> None:
    Convoy.objects.filter(pk=convoy.pk, feature_branch_created_at__isnull=True).update(
        feature_branch_created_at=now, feature_branch_failed_at=None, failure_message=""
    )


def convoy_feature_branch_failed(*, convoy: Convoy, message: str, now: datetime) -> None:
    """Creating the branch failed: rule C waits a minute before it tries again."""
    Convoy.objects.filter(pk=convoy.pk).update(
        feature_branch_failed_at=now,
        failure_message=f"creating the feature branch failed: {message}",
        updated_at=now,
    )


def convoy_audit(
    *,
    convoy: Convoy,
    note: str,
    actor: Actor | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Convoy transitions are audited on its landing MR's bead when it has one, and always
    as a telemetry row, so the team lead sees one history."""
    mr = convoy.landing_merge_requests.select_related("bead").order_by("-pk").first()
    if mr is not None:
        bead_event_record(
            bead=mr.bead,
            kind=BeadEventKind.NOTE,
            actor=actor or Actor.reconciler(),
            note=note,
            data=data,
        )
    telemetry_record(
        name="convoy.transition",
        town_id=convoy.town_id,
        rig_id=convoy.rig_id,
        convoy_id=convoy.pk,
        label=convoy.status,
        reason=note,
        data=data,
    )


def convoy_transition(
    *,
    convoy: Convoy,
    to: str,
    now: datetime,
    note: str,
    actor: Actor | None = None,
    audit: bool = True,
    **fields: Any,
) -> Convoy:
    """Move the convoy from the status it was read in to `to`, with `fields`, audited.

    Conditional on the status read, so a racing worker or team lead loses cleanly
    (ConvoyTransitionRefused) instead of overwriting a newer status."""
    expected = convoy.status
    if to not in CONVOY_TRANSITIONS[expected]:
        raise ConvoyTransitionRefused(
            f"Convoy {convoy.title!r} is {expected}; it cannot become {to}."
        )
    changed = Convoy.objects.filter(pk=convoy.pk, status=expected).update(
        status=to, updated_at=now, **fields
    )
    if changed != 1:
        raise ConvoyTransitionRefused(f"Convoy {convoy.title!r} changed meanwhile.")
    convoy.status = to
    for name, value in fields.items():
        setattr(convoy, name, value)
    if audit:
        convoy_audit(convoy=convoy, note=note, actor=actor)
    return convoy


def convoy_suppress(
    *, convoy_id: int, mr: MergeRequest, pr_url: str, attempt: int, now: datetime
) -> bool:
    """Record a suppressed landing respawn (docs/domain.md §5 step 4), once: False when the
    convoy already holds one or is no longer landing."""
    changed = Convoy.objects.filter(
        pk=convoy_id,
        respawn_suppressed_since__isnull=True,
        status__in=[ConvoyStatus.READY_TO_LAND, ConvoyStatus.LANDING],
    ).update(
        respawn_suppressed_since=now,
        suppressed_landing_mr_id=mr.pk,
        suppressed_pr_url=pr_url,
        suppressed_attempt=attempt,
        updated_at=now,
    )
    return changed == 1


def convoy_suppression_end(*, convoy: Convoy, how: str, now: datetime) -> bool:
    """End the convoy's suppression; False when there is none (or another worker ended it).

    The held landing MR is failed and no longer watched once the suppression ends, so the wait
    its last snapshot shows is released with it: otherwise the next tick would read the same
    stale "open and waiting on a human" and suppress the respawn again, forever.
    """
    since = convoy.respawn_suppressed_since
    if since is None:
        return False
    held_id, pr_url = convoy.suppressed_landing_mr_id, convoy.suppressed_pr_url
    with transaction.atomic():
        changed = Convoy.objects.filter(pk=convoy.pk, respawn_suppressed_since=since).update(
            respawn_suppressed_since=None,
            suppressed_landing_mr=None,
            suppressed_pr_url="",
            suppressed_attempt=None,
            updated_at=now,
        )
        if changed != 1:
            return False
        held = MergeRequest.objects.filter(pk=held_id or 0)
        merge_request_write(
            pks=[held_id] if held_id else [],
            where=Q(bead__status=BeadStatus.FAILED),
            now=now,
            blocker=Blocker.NONE,
            waiting_since=None,
        )
        telemetry_record(
            name="reconciler.respawn_suppression_ended",
            town_id=convoy.town_id,
            rig_id=convoy.rig_id,
            convoy_id=convoy.pk,
            bead_id=held.values_list("bead_id", flat=True).first(),
            label=how,
            duration_ms=duration_ms(since, now),
            data={"landing_mr": held_id, "pr_url": pr_url},
        )
    convoy.respawn_suppressed_since = None
    convoy.suppressed_landing_mr = None
    convoy.suppressed_pr_url = ""
    convoy.suppressed_attempt = None
    return True
