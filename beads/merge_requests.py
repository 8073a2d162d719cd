"""The merge request's state machine: one table of transitions and the one service that
applies them (docs/architecture.md, "Merge-request state machine").

Every writer of a merge request's state goes through `merge_request_transition`: the
reconciler's apply step, the feedback check and auto-merge, agent reports, overrides, the
admin and the demo seed. The MR bead's status follows the state in the same transaction, so
the MR row's `state` is the one source. The dashboard and the admin offer an override button
exactly when `merge_request_refusal` is empty for it, so a button is never offered and then
refused. Transitions whose `target` is None keep the state (an override acting on a live MR):
the service checks and locks, the override writes what it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from beads.audit import Actor
from beads.models import (
    BEAD_STATUS_FOR_MR_STATE,
    Blocker,
    MergeRequest,
    MergeRequestState,
    ReviewStatus,
    bead_ref,
)
from beads.services import StaleBeadError, TerminalBeadError, bead_status_write

S = MergeRequestState
Guard = Callable[[MergeRequest], str]


class MergeRequestTransitionName(models.TextChoices):
    WATCH = "watch", "Watch (the refinery reviews it, or code review is off)"
    REQUEUE = "requeue", "Back to the queue"
    MERGE = "merge", "Merged"
    FAIL = "fail", "Fail"
    RECHECK = "recheck", "Re-check now"
    MERGE_NOW = "merge_now", "Merge now"
    CLEAR_AWAITING = "clear_awaiting", "Clear awaiting approval"
    REDISPATCH = "redispatch", "Re-dispatch"


T = MergeRequestTransitionName


class MergeRequestTransitionRefused(Exception):
    """The MR's state or its guard forbids the transition; the message says why."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class MergeRequestTransition:
    name: T
    sources: frozenset[S]
    target: S | None  # None: the state stays
    guard: Guard
    #: Why it is refused from another state ({state}: the MR's state, {status}: its bead's).
    refused_from: str
    summary: str


def _no_guard(mr: MergeRequest) -> str:
    return ""


def _held_by_suppression(mr: MergeRequest) -> bool:
    """A failed landing MR a convoy's respawn suppression holds: its PR is still watched.
    Lists annotate `held` so offering buttons costs no query per row."""
    held = getattr(mr, "held", None)
    if held is not None:
        return bool(held)
    convoy = apps.get_model("gastown", "Convoy")
    return bool(convoy.objects.filter(suppressed_landing_mr=mr).exists())


def _guard_recheck(mr: MergeRequest) -> str:
    if not mr.pr_url:
        return "This merge request has no pull request yet: nothing to check."
    if mr.state == S.FAILED and not _held_by_suppression(mr):
        return "The MR is failed; its PR is no longer watched, so there is nothing to re-check."
    return ""


def _guard_merge_now(mr: MergeRequest) -> str:
    if not mr.pr_url:
        return "This merge request has no pull request yet: nothing to merge."
    if mr.blocker == Blocker.HUMAN_REVIEW:
        return "The PR is waiting on a human: cannot merge."
    if mr.blocker != Blocker.READY:
        # A request on a PR that is not ready would sit there and merge it days later, at
        # the first ready check, whatever changed since: only a ready PR's delay is skipped.
        return (
            f"The PR is not ready to merge; it waits on: {Blocker(mr.blocker).label}. "
            "Merge now only skips the delay of a ready PR."
        )
    settings = mr.bead.town.effective(mr.bead.rig)
    if settings.code_review and mr.review_status != ReviewStatus.PASSED:
        return (
            "The rig's refinery has not passed this MR yet (code review is on): merge now "
            "skips the delay, not the review."
        )
    return ""


def _guard_clear_awaiting(mr: MergeRequest) -> str:
    if mr.blocker != Blocker.HUMAN_REVIEW:
        return "The PR is not awaiting approval: nothing to clear."
    return ""


def _guard_redispatch(mr: MergeRequest) -> str:
    if mr.blocker == Blocker.HUMAN_REVIEW:
        # R7 released the refinery: the wait belongs to the PR, not to an agent (domain.md §3).
        return (
            "The PR is waiting on a human: there is nothing to dispatch. The refinery "
            "comes back by itself once the wait ends."
        )
    return ""


_LIVE = frozenset({S.OPEN, S.IN_PROGRESS})

TRANSITIONS: dict[str, MergeRequestTransition] = {
    t.name.value: t
    for t in [
        MergeRequestTransition(
            T.WATCH,
            frozenset({S.OPEN}),
            S.IN_PROGRESS,
            _no_guard,
            "The MR is {state}: only an open MR is taken from the queue.",
            "R5: the refinery reviews it (code review on) or it is watched (off).",
        ),
        MergeRequestTransition(
            T.REQUEUE,
            frozenset({S.IN_PROGRESS}),
            S.OPEN,
            _no_guard,
            "The MR is {state}: only an MR in progress goes back to the queue.",
            "Its PR could not be opened, or the refinery reported a failed review.",
        ),
        MergeRequestTransition(
            T.MERGE,
            _LIVE,
            S.MERGED,
            _no_guard,
            "The MR is {state}; terminal merge requests never change.",
            "Its PR merged (observed by a check, or by our merge call).",
        ),
        MergeRequestTransition(
            T.FAIL,
            _LIVE,
            S.FAILED,
            _no_guard,
            "The MR is already {state}; terminal beads never change.",
            "A rule, the error policy, a closed PR, a cancellation, a closed convoy or a "
            "team lead fails it.",
        ),
        MergeRequestTransition(
            T.RECHECK,
            frozenset({*_LIVE, S.FAILED}),
            None,
            _guard_recheck,
            "The MR is {state}; its PR is no longer watched, so there is nothing to re-check.",
            "Override: due for a feedback check at once (also a failed landing MR a "
            "suppression holds).",
        ),
        MergeRequestTransition(
            T.MERGE_NOW,
            _LIVE,
            None,
            _guard_merge_now,
            "The MR is {state} (its bead is {status}): it cannot be merged.",
            "Override: skip the auto-merge delay of a ready PR whose review passed.",
        ),
        MergeRequestTransition(
            T.CLEAR_AWAITING,
            _LIVE,
            None,
            _guard_clear_awaiting,
            "The MR is {state}; its wait already ended. To let a held landing go on, use "
            "Re-check now or End suppression on its convoy.",
            "Override: treat the PR as not waiting on a human until the next check.",
        ),
        MergeRequestTransition(
            T.REDISPATCH,
            _LIVE,
            None,
            _guard_redispatch,
            "Bead {bead} is {status}; terminal beads are never reopened. Create a new bead "
            "to retry the work.",
            "Override: reset the MR bead's dispatch attempts and back-off.",
        ),
    ]
}


def merge_request_refusal(*, merge_request: MergeRequest, transition: str) -> str:
    """Why `transition` may not be applied to the MR as read ("" when it may)."""
    spec = TRANSITIONS[transition]
    mr = merge_request
    if mr.state not in spec.sources:
        return spec.refused_from.format(
            state=mr.state, status=BEAD_STATUS_FOR_MR_STATE[S(mr.state)], bead=bead_ref(mr.bead_id)
        )
    return spec.guard(mr)


def merge_request_allowed_transitions(*, merge_request: MergeRequest) -> list[str]:
    """The transitions the service would accept now: what the dashboard and admin offer."""
    return [
        name
        for name in TRANSITIONS
        if not merge_request_refusal(merge_request=merge_request, transition=name)
    ]


def merge_request_transition(
    *,
    merge_request: MergeRequest,
    transition: str,
    actor: Actor,
    now: datetime | None = None,
    note: str = "",
    failure_code: str = "",
    failure_message: str = "",
    data: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
) -> MergeRequest:
    """Apply `transition` to the MR, or raise MergeRequestTransitionRefused having changed
    nothing. The guard is checked on the MR as the caller read it, then again on the row,
    locked, inside the transaction (another worker may have moved it meanwhile). A state
    change moves the MR bead's status in the same transaction, audited as `actor`. `fields`
    are the transition's effects on the row (merge now's request, clear awaiting's reset),
    written under the same lock with a new version."""
    mr = merge_request
    refusal = merge_request_refusal(merge_request=mr, transition=transition)
    if refusal:
        raise MergeRequestTransitionRefused(refusal)
    spec = TRANSITIONS[transition]
    now = now or timezone.now()
    with transaction.atomic():
        fresh = (
            MergeRequest.objects.select_for_update(of=("self",))
            .select_related("bead", "bead__town", "bead__rig")
            .filter(pk=mr.pk)
            .first()
        )
        if fresh is None:
            raise MergeRequestTransitionRefused(f"The MR of {mr.pr_name} no longer exists.")
        if hasattr(mr, "held"):
            fresh.held = mr.held  # type: ignore[attr-defined]
        refusal = merge_request_refusal(merge_request=fresh, transition=transition)
        if refusal:
            raise MergeRequestTransitionRefused(f"The MR changed meanwhile. {refusal}")
        if fields:
            merge_request_write(merge_request=mr, now=now, **fields)
        if spec.target is None or spec.target == fresh.state:
            return mr
        changed = MergeRequest.objects.filter(pk=mr.pk, state=fresh.state).update(
            state=spec.target, updated_at=now
        )
        if changed != 1:  # pragma: no cover - the row is locked
            raise MergeRequestTransitionRefused("The MR changed meanwhile.")
        bead = fresh.bead
        try:
            bead_status_write(
                bead=bead,
                status=BEAD_STATUS_FOR_MR_STATE[spec.target],
                actor=actor,
                note=note,
                failure_code=failure_code,
                failure_message=failure_message,
                now=now,
                data={"transition": transition, **(data or {})},
            )
        except (TerminalBeadError, StaleBeadError) as error:
            # A row written outside the services whose bead says otherwise: refuse, the
            # transaction rolls the state back.
            raise MergeRequestTransitionRefused(str(error)) from None
    mr.state, mr.updated_at = spec.target, now
    mine = mr._state.fields_cache.get("bead")
    if mine is not None and mine is not bead:
        for name in ("status", "updated_at", "closed_at", "failure_code", "failure_message"):
            setattr(mine, name, getattr(bead, name))
    return mr


def merge_request_write(
    *,
    merge_request: MergeRequest | None = None,
    pks: Iterable[int] = (),
    where: Q | None = None,
    now: datetime | None = None,
    new_version: bool = True,
    **fields: Any,
) -> int:
    """Write bookkeeping `fields` (never the state: transitions move it) to one merge request
    or to `pks`, those that still match `where`, in one UPDATE; returns how many rows changed.

    Every writer outside the feedback check comes through here, so the one rule of its
    optimistic concurrency holds in one place: a write of anything the check reads and writes
    back counts a new version (MergeRequest.version), and a pass holding an older copy stores
    nothing over it. `new_version=False` is for what the check never writes back (a request
    to be checked)."""
    if "state" in fields:
        raise ValueError("A merge request's state moves only through merge_request_transition.")
    ids = [merge_request.pk] if merge_request is not None else list(pks)
    if not ids:
        return 0
    rows = MergeRequest.objects.filter(pk__in=ids)
    if where is not None:
        rows = rows.filter(where)
    fields.setdefault("updated_at", now or timezone.now())
    if new_version:
        fields["version"] = F("version") + 1
    changed = rows.update(**fields)
    if merge_request is not None and changed:
        for name, value in fields.items():
            if name != "version":
                setattr(merge_request, name, value)
    return changed
