"""The watchdog: nothing stalls silently (docs/domain.md §3, rule X).

After the other rules planned, every non-terminal bead and convoy of the snapshot that no
planned action touches, that has not changed for STALL_AFTER, and that is in no known wait
(an agent at work, a reviewer, running checks, a back-off or a cool-down with its end, a
paused town, an escalation already raised) is a stall: nothing will ever move it. Each raises
one escalation that names it and says why, so a row written outside the services (the admin,
a fixture, the shell, another tool) in a state no rule handles is seen by a person.

Pure like the rules: a function of the snapshot, the clock and the planned actions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from beads.models import (
    BEAD_STATUS_FOR_MR_STATE,
    TERMINAL_STATUSES,
    BeadStatus,
    BeadType,
    MergeRequest,
    MergeRequestState,
    bead_ref,
)
from gastown.models.convoys import ConvoyStatus
from gastown.reconciler import actions as a
from gastown.reconciler.snapshot import TownSnapshot

#: How long an entity may sit unchanged, untouched by any rule and in no known wait, before it
#: is called stalled: past any step the rules take (B3's 5 minutes, a tick's seconds), and
#: time for a row being fixed by hand.
STALL_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Verdict:
    """What keeps an entity where it is: a known wait (`waiting`) or a stall (`why`)."""

    waiting: str = ""
    why: str = ""


def _touched(planned: list[a.Action]) -> tuple[set[int], set[int]]:
    beads: set[int] = set()
    convoys: set[int] = set()
    for action in planned:
        for name in ("bead_id", "source_bead_id"):
            value = getattr(action, name, None)
            if value:
                beads.add(value)
        convoy_id = getattr(action, "convoy_id", None)
        if convoy_id:
            convoys.add(convoy_id)
    return beads, convoys


def _cycle_through(s: TownSnapshot, start: int) -> bool:
    """Whether `start` waits, through active `blocks` links, for itself."""
    seen: set[int] = set()
    frontier = list(s.blockers_of.get(start, []))
    while frontier:
        bead_id = frontier.pop()
        if bead_id == start:
            return True
        if bead_id in seen:
            continue
        seen.add(bead_id)
        blocker = s.beads.get(bead_id)
        if blocker is not None and blocker.status not in TERMINAL_STATUSES:
            frontier.extend(s.blockers_of.get(bead_id, []))
    return False


def _issue_verdict(s: TownSnapshot, bead_id: int) -> Verdict:
    bead = s.beads[bead_id]
    if bead.status == BeadStatus.OPEN:
        if bead.rig_id is None:
            return Verdict(
                why="it has no rig: only beads of a rig (a repository) are dispatched. Set "
                "its rig, or close it."
            )
        if _cycle_through(s, bead.pk):
            return Verdict(
                why="it waits, through its blockers, for itself (a dependency cycle): none "
                "of them can ever start. Remove one of the dependencies."
            )
        active_blockers = [
            b
            for b in s.blockers_of.get(bead.pk, [])
            if b in s.beads and s.beads[b].status not in TERMINAL_STATUSES
        ]
        if active_blockers:
            return Verdict(waiting=f"blocked by #{active_blockers[0]}")
        if s.town.paused:
            return Verdict(waiting="the town is paused")
        return Verdict(waiting="")  # B1 dispatches it (or fails it) when its back-off ends
    if bead.status == BeadStatus.IN_PROGRESS:
        agent = s.agent_hooked_to(bead.pk)
        if agent is not None:
            return Verdict(waiting=f"{agent.name} works on it")
        return Verdict(waiting="")  # B3 reopens it once 5 minutes passed without an agent
    # in review
    mrs = s.mrs_by_source.get(bead.pk, [])
    if not mrs:
        return Verdict(
            why="it is in review but has no merge request: nothing will review, merge or "
            "reopen it. Re-dispatch it, or close it."
        )
    return Verdict(waiting="its merge request")


def merge_request_stall(s: TownSnapshot, mr: MergeRequest) -> str:
    """Why no rule will move this live MR and it is in no known wait ("" when one will).

    Every other rule moves a live merge request or leaves it in a known wait: on a human (a
    review, a reviewer, a rework bead, a final refusal's escalation), on checks, on GitHub
    (including a refusal's hold, which ends at a known time), on the refinery (R5/R6), or on
    the town (paused, GitHub blocked)."""
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


def _mr_bead_verdict(s: TownSnapshot, bead_id: int) -> tuple[str, Verdict]:
    """What to call an MR bead in the escalation, and its verdict."""
    mr = s.live_merge_request(bead_id)
    if mr is None:
        return f"MR {bead_ref(bead_id)}", Verdict(
            why=f"its bead is {s.beads[bead_id].status} but it has no live merge request "
            "(none, or one that is merged or failed); a row written outside the services. "
            "Create its merge request, or fail the bead."
        )
    return f"MR {bead_ref(mr.bead_id)}", Verdict(why=merge_request_stall(s, mr))


def _convoy_verdict(s: TownSnapshot, convoy_id: int) -> Verdict:
    convoy = next(c for c in s.convoys if c.pk == convoy_id)
    members = s.convoy_members.get(convoy.pk, [])
    if convoy.status == ConvoyStatus.OPEN:
        if not members:
            return Verdict(why="it is open and has no beads: add its work, or close it.")
        return Verdict(waiting="its beads")
    if convoy.respawn_suppressed_since is not None:
        return Verdict(waiting="its landing PR waits on a human")
    return Verdict(waiting="")  # rule C lands, respawns after the cool-down, or fails it


def _last_change(updated_at: datetime | None, created_at: datetime | None) -> datetime | None:
    return updated_at or created_at


def rule_x_watchdog(s: TownSnapshot, planned: list[a.Action]) -> Iterator[a.Action]:
    touched_beads, touched_convoys = _touched(planned)
    raised = {action.key for action in planned if isinstance(action, a.RaiseEscalation)}

    def stalled(key: str, changed: datetime | None) -> bool:
        fresh = changed is not None and s.now - changed < STALL_AFTER
        return not fresh and key not in s.open_escalation_keys and key not in raised

    # A live merge request's bead counts even when its status says terminal (written by hand).
    for bead_id, bead in sorted(s.beads.items()):
        # A rule may plan an action on a merge request whose row contradicts itself; the
        # transition then refuses it, so for merge requests a planned action proves nothing.
        if bead_id in touched_beads and bead.type != BeadType.MERGE_REQUEST:
            continue
        if bead.status in TERMINAL_STATUSES and s.live_merge_request(bead_id) is None:
            continue
        if bead.type == BeadType.ESCALATION:
            continue  # waits on a person by definition
        key = f"stalled:bead:{bead_id}"
        if not stalled(key, _last_change(bead.updated_at, bead.created_at)):
            continue
        if bead.type == BeadType.MERGE_REQUEST:
            what, verdict = _mr_bead_verdict(s, bead_id)
            title = f"Stalled: {what} will not move by itself"
        else:
            verdict = _issue_verdict(s, bead_id)
            title = f"Stalled: {bead_ref(bead_id)} {bead.title}"
        if verdict.why:
            yield a.RaiseEscalation(
                rule="X",
                key=key,
                title=title[:300],
                body=(
                    f"{bead_ref(bead_id)} ({bead.type}, {bead.status}) will not move: {verdict.why}"
                ),
                rig_id=bead.rig_id,
            )
    for convoy in s.convoys:
        if convoy.pk in touched_convoys:
            continue
        key = f"stalled:convoy:{convoy.pk}"
        if not stalled(key, _last_change(convoy.updated_at, convoy.created_at)):
            continue
        verdict = _convoy_verdict(s, convoy.pk)
        if verdict.why:
            yield a.RaiseEscalation(
                rule="X",
                key=key,
                title=f"Stalled: convoy {convoy.title}"[:300],
                body=f"Convoy {convoy.title!r} ({convoy.status}) will not move: {verdict.why}",
                rig_id=convoy.rig_id,
                convoy_id=convoy.pk,
            )
