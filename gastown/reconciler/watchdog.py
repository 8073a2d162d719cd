"""Rule X, the watchdog for merge requests (docs/architecture.md, "Nothing stalls silently").

A pure function of the snapshot, like every rule. Every other rule moves a live merge request
or leaves it in a known wait: on a human (a review, a reviewer, a rework bead, a final
refusal's escalation), on checks, on GitHub (including a refusal's hold, which ends at a
known time), on the refinery (R5/R6), or on the town (paused, GitHub blocked). What none of
them can move is named here, once per merge request, with the reason: a team lead fixes it or
fails the MR.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from beads.models import (
    BEAD_STATUS_FOR_MR_STATE,
    BeadType,
    MergeRequest,
    MergeRequestState,
)
from gastown.reconciler import actions as a
from gastown.reconciler.snapshot import TownSnapshot

#: How long a stall must last before it is raised: writes are transactional, but a row being
#: fixed by hand (or a PR being opened) deserves a moment.
STALL_GRACE = timedelta(minutes=10)


def merge_request_stall(s: TownSnapshot, mr: MergeRequest) -> str:
    """Why no rule will move this live MR and it is in no known wait ("" when one will)."""
    bead = mr.bead
    expected = BEAD_STATUS_FOR_MR_STATE[MergeRequestState(mr.state)]
    if bead.status != expected:
        # Written outside the services: every transition refuses such a row.
        return (
            f"its bead is {bead.status} but the merge request is {mr.state} (its bead should "
            f"be {expected}); a row written outside the services. Fix the bead's status or "
            "fail the MR."
        )
    if bead.rig_id is None:
        return (
            "it belongs to no rig, so no refinery reviews it and no PR can be opened for it. "
            "Set the MR bead's rig, or fail the MR."
        )
    if (
        mr.state == MergeRequestState.IN_PROGRESS
        and not mr.pr_url
        and s.agent_hooked_to(bead.pk) is None
    ):
        return (
            "it is in progress without a pull request and no agent works on it: nothing "
            "opens its PR (that happens for open MRs) and nothing watches it. Add its PR URL, "
            "or fail the MR."
        )
    return ""


def rule_x_watchdog(s: TownSnapshot) -> Iterator[a.Action]:
    live = {mr.bead_id for mr in s.merge_requests if mr.is_active}
    for mr in s.merge_requests:
        if not mr.is_active or s.now - mr.updated_at < STALL_GRACE:
            continue
        why = merge_request_stall(s, mr)
        if why and _key(mr.bead_id) not in s.open_escalation_keys:
            yield _stalled(mr.bead_id, mr.bead.rig_id, f"merge request #{mr.pk}", why)
    for bead in s.beads.values():
        if bead.type != BeadType.MERGE_REQUEST or bead.is_terminal or bead.pk in live:
            continue
        if s.now - bead.updated_at < STALL_GRACE or _key(bead.pk) in s.open_escalation_keys:
            continue
        yield _stalled(
            bead.pk,
            bead.rig_id,
            f"MR bead #{bead.pk}",
            f"its bead is {bead.status} but it has no live merge request (none, or one "
            "that is merged or failed); a row written outside the services. Create its "
            "merge request, or close the bead in the admin.",
        )


def _key(bead_id: int) -> str:
    return f"stalled:mr-bead:{bead_id}"


def _stalled(bead_id: int, rig_id: int | None, what: str, why: str) -> a.RaiseEscalation:
    return a.RaiseEscalation(
        rule="X",
        key=_key(bead_id),
        title=f"Stalled: {what} will not move by itself"[:300],
        body=f"No rule will move {what} (bead #{bead_id}) and it waits on nothing known: {why}",
        rig_id=rig_id,
    )
