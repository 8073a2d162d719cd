"""Manual overrides a team lead presses on the dashboard or in the admin (domain.md §8).

Each service is keyword-only, checks the object's state with a conditional update (so a
concurrent reconciler tick cannot be overwritten with a stale copy), audits the change with
the user and the reason, and returns a short sentence saying what it did. A state that
forbids the override raises OverrideRefused; terminal beads are never reopened.

Audit trail: a BeadEvent of kind "override" on the bead the override concerns (for a convoy,
its landing MR's bead when there is one) and, for every override, a TelemetryEvent named
"override.<service name>" so the town has one list of everything people did by hand.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from beads.audit import Actor
from beads.merge_requests import (
    MergeRequestTransitionRefused,
    merge_request_refusal,
    merge_request_transition,
)
from beads.models import (
    ACTIVE_MR_STATES,
    Bead,
    BeadEventKind,
    BeadStatus,
    BeadType,
    Blocker,
    MergeRequest,
)
from beads.services import (
    StaleBeadError,
    TerminalBeadError,
    bead_assign,
    bead_dispatch_reset,
    bead_event_record,
    bead_set_status,
    merge_request_request_check,
)
from gastown.models import (
    Agent,
    AgentStatus,
    Convoy,
    ConvoyStatus,
    TelemetryEvent,
    Town,
    TownPermission,
)
from gastown.scheduling import enqueue_feedback_check
from gastown.services.convoys import (
    ConvoyTransitionRefused,
    convoy_suppression_end,
    convoy_transition,
)
from gastown.services.merge_requests import mr_fail, wait_ended_event


class OverrideRefused(Exception):
    """The object's state forbids the override; the message says why, for the team lead."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def _reason_required(reason: str, what: str) -> str:
    """The destructive overrides (fail an MR, close a convoy, pause a town) are refused
    without a reason: it is what the audit trail says to whoever reads it later."""
    if not reason.strip():
        raise OverrideRefused(f"A reason is required to {what}: it is kept in the audit trail.")
    return reason.strip()


def override_check_at_once(town_id: int) -> None:
    """Queue the feedback check an override promised, once its transaction commits (the
    one-minute schedule remains the safety net)."""
    transaction.on_commit(functools.partial(enqueue_feedback_check, town_id))


def override_audit(
    *,
    name: str,
    town: Town,
    user: Any,
    reason: str,
    message: str,
    bead: Bead | None = None,
    convoy: Convoy | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    actor = Actor.for_user(user)
    payload = {"override": name, **(data or {})}
    if bead is not None:
        bead_event_record(
            bead=bead,
            kind=BeadEventKind.OVERRIDE,
            actor=actor,
            note=f"{message} Reason: {reason}" if reason else message,
            data=payload,
        )
    TelemetryEvent.objects.create(
        name=f"override.{name}",
        town=town,
        rig_id=bead.rig_id if bead is not None else (convoy.rig_id if convoy else None),
        bead=bead,
        convoy=convoy,
        label=user.get_username(),
        reason=reason,
        data=payload,
    )


def _mr_audit(*, name: str, mr: MergeRequest, user: Any, reason: str, message: str) -> None:
    override_audit(
        name=name,
        town=mr.bead.town,
        user=user,
        reason=reason,
        message=message,
        bead=mr.bead,
        data={"pr_url": mr.pr_url},
    )


# --- merge requests ---------------------------------------------------------------------


def _mr_transition(
    *, mr: MergeRequest, transition: str, user: Any, now: datetime, **fields: Any
) -> None:
    """The MR's state machine checks (and, inside the caller's transaction, locks) first:
    the same table the buttons are offered from (beads.merge_requests); `fields` are the
    transition's effects on the row."""
    try:
        merge_request_transition(
            merge_request=mr,
            transition=transition,
            actor=Actor.for_user(user),
            now=now,
            fields=fields,
        )
    except MergeRequestTransitionRefused as refused:
        raise OverrideRefused(refused.message) from None


def merge_request_recheck(
    *, merge_request: MergeRequest, user: Any, reason: str = "", now: datetime | None = None
) -> str:
    """Make the MR due for a feedback check at once (domain.md §8: re-check a PR now)."""
    mr = merge_request
    now = now or timezone.now()
    message = f"{mr.pr_name} is being checked now."
    with transaction.atomic():
        _mr_transition(mr=mr, transition="recheck", user=user, now=now)
        merge_request_request_check(merge_request=mr, now=now)
        override_check_at_once(mr.bead.town_id)
        _mr_audit(name="merge_request_recheck", mr=mr, user=user, reason=reason, message=message)
    return message


def merge_request_merge_now(
    *, merge_request: MergeRequest, user: Any, reason: str = "", now: datetime | None = None
) -> str:
    """Skip the auto-merge delay; the fresh pre-merge check still runs (domain.md §5)."""
    mr = merge_request
    now = now or timezone.now()
    message = (
        f"{mr.pr_name} will be checked now and merged if GitHub says it is ready "
        "(the delay is skipped, the fresh check is not)."
    )
    with transaction.atomic():
        _mr_transition(
            mr=mr,
            transition="merge_now",
            user=user,
            now=now,
            merge_requested_at=now,
            check_requested_at=now,
        )
        override_check_at_once(mr.bead.town_id)
        _mr_audit(name="merge_request_merge_now", mr=mr, user=user, reason=reason, message=message)
    return message


def merge_request_clear_awaiting(
    *, merge_request: MergeRequest, user: Any, reason: str = "", now: datetime | None = None
) -> str:
    """Treat the PR as not waiting on a human until the next check says otherwise.

    The merge refusal that parked it (merge_refusal) is forgotten too: else the next check
    would hold it at human_review again on that refusal, without asking GitHub."""
    mr = merge_request
    now = now or timezone.now()
    # A terminal MR's wait was recorded as resolved when it ended (mr_failed); clearing would
    # resolve it twice. A failed landing MR held by a suppression is no exception: its flag
    # belongs to the feedback checks, and clearing it would not end the suppression (rule C
    # counts a PR with no blocker as still waiting). The state machine refuses both.
    waiting_since = mr.waiting_since
    message = f"{mr.pr_name} is no longer marked as awaiting approval (until the next check)."
    with transaction.atomic():
        _mr_transition(
            mr=mr,
            transition="clear_awaiting",
            user=user,
            now=now,
            blocker=Blocker.NONE,
            waiting_since=None,
            merge_refusal=None,
            merge_refusal_waits_on="",
            merge_hold_from=None,
        )
        wait_ended_event(mr, how="cleared_by_user", started_at=waiting_since, now=now).save()
        _mr_audit(
            name="merge_request_clear_awaiting", mr=mr, user=user, reason=reason, message=message
        )
    return message


def merge_request_fail(
    *, merge_request: MergeRequest, user: Any, reason: str = "", now: datetime | None = None
) -> str:
    """Fail a non-terminal MR bead (failure code failed_by_user).

    The PR snapshot (awaiting_approval included) is left as observed: the landing rules read
    it to decide whether a failed landing MR's respawn is suppressed (domain.md §5 step 4)."""
    mr = merge_request
    now = now or timezone.now()
    bead = mr.bead
    refusal = merge_request_refusal(merge_request=mr, transition="fail")
    if refusal:
        raise OverrideRefused(refusal)
    reason = _reason_required(reason, "fail a merge request")
    message = f"MR {bead.ref} ({mr.pr_name}) failed by {user.get_username()}."
    with transaction.atomic():
        # The wait in progress, if any, ends as mr_failed (once: mr_fail is the one place).
        failed = mr_fail(
            mr,
            code="failed_by_user",
            message=reason,
            now=now,
            actor=Actor.for_user(user),
        )
        if not failed:
            raise OverrideRefused("The MR ended meanwhile; terminal beads never change.")
        override_audit(
            name="merge_request_fail",
            town=bead.town,
            user=user,
            reason=reason,
            message=message,
            bead=bead,
            data={"pr_url": mr.pr_url},
        )
    return message


# --- beads ------------------------------------------------------------------------------


def bead_redispatch(*, bead: Bead, user: Any, reason: str = "", now: datetime | None = None) -> str:
    """Reset a non-terminal bead's dispatch back-off and attempts; an in-progress issue goes
    back to open with its agent unhooked, so B1 dispatches it afresh."""
    now = now or timezone.now()
    refusal = _bead_redispatch_refusal(bead)
    if refusal:
        raise OverrideRefused(refusal)
    mr = _merge_request_of(bead)
    actor = Actor.for_user(user)
    parts = ["attempts and back-off reset"]
    with transaction.atomic():
        if mr is not None:
            _mr_transition(mr=mr, transition="redispatch", user=user, now=now)
        if not bead_dispatch_reset(bead=bead, now=now):
            raise OverrideRefused(f"Bead {bead.ref} became terminal meanwhile; not touched.")
        if bead.type == BeadType.ISSUE and bead.status == BeadStatus.IN_PROGRESS:
            agents = list(Agent.objects.filter(hooked_bead=bead))
            Agent.objects.filter(hooked_bead=bead).update(
                hooked_bead=None, status=AgentStatus.IDLE, updated_at=now
            )
            for agent in agents:
                bead_event_record(
                    bead=bead,
                    kind=BeadEventKind.UNHOOKED,
                    actor=actor,
                    note=f"{agent.name} unhooked by a re-dispatch.",
                    data={"agent": agent.name},
                )
            bead_assign(bead=bead, agent=None)
            try:
                bead_set_status(
                    bead=bead,
                    status=BeadStatus.OPEN,
                    actor=actor,
                    note="Re-dispatched by a team lead.",
                    now=now,
                )
            except (TerminalBeadError, StaleBeadError) as error:
                raise OverrideRefused(str(error)) from None
            parts.append("agent unhooked, back to open")
        message = f"Bead {bead.ref} will be dispatched again ({', '.join(parts)})."
        override_audit(
            name="bead_redispatch",
            town=bead.town,
            user=user,
            reason=reason,
            message=message,
            bead=bead,
        )
    return message


# --- convoys ----------------------------------------------------------------------------


def _landing_bead(convoy: Convoy) -> Bead | None:
    """The bead a convoy-level override is recorded on: the suppressed landing MR, else the
    newest landing MR."""
    if convoy.suppressed_landing_mr_id:
        mr = (
            MergeRequest.objects.select_related("bead")
            .filter(pk=convoy.suppressed_landing_mr_id)
            .first()
        )
        if mr is not None:
            return mr.bead
    mr = (
        MergeRequest.objects.select_related("bead")
        .filter(landing_convoy=convoy)
        .order_by("-created_at", "-pk")
        .first()
    )
    return mr.bead if mr is not None else None


def convoy_end_suppression(
    *, convoy: Convoy, user: Any, reason: str = "", now: datetime | None = None
) -> str:
    """End a respawn suppression by hand: the normal landing rules resume (domain.md §5 step 4)."""
    now = now or timezone.now()
    if convoy.respawn_suppressed_since is None:
        raise OverrideRefused("This convoy's landing respawn is not suppressed.")
    landing_mr_id = convoy.suppressed_landing_mr_id
    pr_url = convoy.suppressed_pr_url
    bead = _landing_bead(convoy)
    message = f"The suppression of {convoy.title!r} ended: the normal landing rules resume."
    with transaction.atomic():
        if not convoy_suppression_end(convoy=convoy, how="by_user", now=now):
            raise OverrideRefused("The suppression ended meanwhile.")
        override_audit(
            name="convoy_end_suppression",
            town=convoy.town,
            user=user,
            reason=reason,
            message=message,
            bead=bead,
            convoy=convoy,
            data={"landing_mr": landing_mr_id, "pr_url": pr_url},
        )
    return message


def convoy_retry_landing(
    *, convoy: Convoy, user: Any, reason: str = "", now: datetime | None = None
) -> str:
    """A failed convoy goes back to ready_to_land with its landing attempts reset."""
    now = now or timezone.now()
    if convoy.status != ConvoyStatus.FAILED:
        raise OverrideRefused(
            f"Only a failed convoy's landing can be retried; this one is {convoy.status}."
        )
    previous_reason = convoy.failure_reason
    message = f"{convoy.title!r} is ready to land again (landing attempts reset)."
    with transaction.atomic():
        try:
            convoy_transition(
                convoy=convoy,
                to=ConvoyStatus.READY_TO_LAND,
                now=now,
                note=message,
                audit=False,  # the override's own audit below says who and why
                landing_attempts=0,
                last_landing_attempt_at=None,
                failure_reason="",
                failure_message="",
            )
        except ConvoyTransitionRefused:
            raise OverrideRefused("The convoy changed meanwhile; it is no longer failed.") from None
        override_audit(
            name="convoy_retry_landing",
            town=convoy.town,
            user=user,
            reason=reason,
            message=message,
            bead=_landing_bead(convoy),
            convoy=convoy,
            data={"previous_failure_reason": previous_reason},
        )
    return message


def convoy_close(
    *, convoy: Convoy, user: Any, reason: str = "", now: datetime | None = None
) -> str:
    """Close a convoy without landing it (terminal)."""
    now = now or timezone.now()
    if convoy.is_terminal:
        raise OverrideRefused(f"The convoy is already {convoy.status}.")
    reason = _reason_required(reason, "close a convoy")
    previous = convoy.status
    message = f"{convoy.title!r} closed without landing."
    bead = _landing_bead(convoy)
    with transaction.atomic():
        # Closing applies to whatever non-terminal status the convoy has now, not only the
        # one the page showed: read it under the row lock the transition then takes.
        convoy.status = (
            Convoy.objects.select_for_update().filter(pk=convoy.pk).values_list("status", flat=True)
        ).first() or convoy.status
        try:
            convoy_transition(
                convoy=convoy,
                to=ConvoyStatus.CLOSED,
                now=now,
                note=message,
                audit=False,  # the override's own audit below says who and why
                closed_at=now,
            )
        except ConvoyTransitionRefused:
            raise OverrideRefused("The convoy ended meanwhile.") from None
        # The reconciler only loads open convoys, so nothing else would ever end a closed
        # convoy's suppression: it would stay on the overview and keep its PR polled. The row
        # is locked by the update above; end the suppression it holds now, not the page's.
        current = Convoy.objects.filter(pk=convoy.pk).values(
            "respawn_suppressed_since", "suppressed_landing_mr_id", "suppressed_pr_url"
        )[0]
        convoy.respawn_suppressed_since = current["respawn_suppressed_since"]
        convoy.suppressed_landing_mr_id = current["suppressed_landing_mr_id"]
        convoy.suppressed_pr_url = current["suppressed_pr_url"]
        ended = convoy_suppression_end(convoy=convoy, how="by_user", now=now)
        # A landing MR in flight would still be merged by the next check: the convoy that asked
        # for it is gone, so it fails with it (its wait, if any, ends as mr_failed).
        landing = MergeRequest.objects.filter(landing_convoy=convoy, state__in=ACTIVE_MR_STATES)
        for mr in landing.select_related("bead"):
            mr_fail(
                mr,
                code="convoy_closed",
                message=f"Its convoy {convoy.title!r} was closed by {user.get_username()}.",
                now=now,
                actor=Actor.for_user(user),
            )
        override_audit(
            name="convoy_close",
            town=convoy.town,
            user=user,
            reason=reason,
            message=message,
            bead=bead,
            convoy=convoy,
            data={"from_status": previous, "ended_suppression": ended},
        )
    return message


# --- towns ------------------------------------------------------------------------------


def _town_set_paused(
    *, town: Town, user: Any, reason: str, now: datetime | None, paused: bool
) -> str:
    """Pause or resume: one guarded update (a second click is refused, not repeated) and
    its audit."""
    now = now or timezone.now()
    if paused:
        reason = _reason_required(reason, "pause a town")
    with transaction.atomic():
        changed = Town.objects.filter(pk=town.pk, paused=not paused).update(
            paused=paused, updated_at=now
        )
        if changed != 1:
            raise OverrideRefused(
                f"{town.name} is already paused." if paused else f"{town.name} is not paused."
            )
        town.paused = paused
        message = (
            f"{town.name} is paused: nothing will be dispatched until it is resumed."
            if paused
            else f"{town.name} resumed: dispatch starts again."
        )
        override_audit(
            name="town_pause" if paused else "town_resume",
            town=town,
            user=user,
            reason=reason,
            message=message,
        )
    return message


def town_pause(*, town: Town, user: Any, reason: str = "", now: datetime | None = None) -> str:
    """Stop all dispatch in the town."""
    return _town_set_paused(town=town, user=user, reason=reason, now=now, paused=True)


def town_resume(*, town: Town, user: Any, reason: str = "", now: datetime | None = None) -> str:
    """Dispatch again."""
    return _town_set_paused(town=town, user=user, reason=reason, now=now, paused=False)


# --- the catalogue the dashboard and the admin offer ------------------------------------


@dataclass(frozen=True)
class Override:
    """One button: which object it acts on, the permission it needs, and what it does."""

    name: str
    label: str
    target: str  # "merge_request", "bead", "convoy" or "town"
    permission: TownPermission
    effect: str
    service: Callable[..., str]
    available: Callable[[Any], bool]
    danger: bool = False
    #: Refused without a reason (the service says so too): the destructive ones.
    reason_required: bool = False
    #: Why it would be refused on an object ("" when it would not); a merge request override
    #: asks the state machine's table, the one its service refuses with.
    refusal: Callable[[Any], str] | None = None

    @property
    def perm(self) -> str:
        return f"gastown.{self.permission.value}"

    def refusal_for(self, obj: Any) -> str:
        if self.refusal is not None:
            return self.refusal(obj)
        return "" if self.available(obj) else "It does not apply in the object's current state."


def _mr_refusal(transition: str) -> Callable[[MergeRequest], str]:
    return lambda mr: merge_request_refusal(merge_request=mr, transition=transition)


def _mr_allows(transition: str) -> Callable[[MergeRequest], bool]:
    """A merge request button is offered exactly when its transition would be accepted."""
    return lambda mr: not merge_request_refusal(merge_request=mr, transition=transition)


def _merge_request_of(bead: Bead) -> MergeRequest | None:
    if bead.type != BeadType.MERGE_REQUEST:
        return None
    try:
        mr: MergeRequest = bead.merge_request
    except MergeRequest.DoesNotExist:
        return None
    return mr


def _bead_redispatch_refusal(bead: Bead) -> str:
    """Why a re-dispatch would be refused ("" when it would not): the one rule the button
    and the service share."""
    if bead.is_terminal:
        return (
            f"Bead {bead.ref} is {bead.status}; terminal beads are never reopened. "
            "Create a new bead to retry the work."
        )
    if bead.type == BeadType.ESCALATION:
        return "An escalation is for a person: there is nothing to dispatch."
    if bead.type == BeadType.ISSUE and bead.status == BeadStatus.IN_REVIEW:
        # Its work is a merge request now; resetting the issue's attempts would do nothing.
        return (
            f"Bead {bead.ref} is in review: its merge request carries the work now. "
            "Act on the merge request instead."
        )
    mr = _merge_request_of(bead)
    return "" if mr is None else merge_request_refusal(merge_request=mr, transition="redispatch")


def _bead_redispatchable(bead: Bead) -> bool:
    return not _bead_redispatch_refusal(bead)


OVERRIDES: dict[str, Override] = {
    o.name: o
    for o in [
        Override(
            "merge_request_recheck",
            "Re-check now",
            "merge_request",
            TownPermission.RECHECK_PR,
            "Makes the MR due for a feedback check at once; nothing else changes.",
            merge_request_recheck,
            _mr_allows("recheck"),
            refusal=_mr_refusal("recheck"),
        ),
        Override(
            "merge_request_merge_now",
            "Merge now",
            "merge_request",
            TownPermission.MERGE_NOW,
            "Skips the auto-merge delay of a ready PR and checks it at once. The PR is still "
            "checked right before the merge and is not merged unless GitHub says it is ready.",
            merge_request_merge_now,
            _mr_allows("merge_now"),
            refusal=_mr_refusal("merge_now"),
        ),
        Override(
            "merge_request_clear_awaiting",
            "Clear awaiting approval",
            "merge_request",
            TownPermission.CLEAR_AWAITING,
            "Treats the PR as not waiting on a human until the next check says otherwise; "
            "the wait is recorded as resolved (cleared_by_user).",
            merge_request_clear_awaiting,
            _mr_allows("clear_awaiting"),
            refusal=_mr_refusal("clear_awaiting"),
        ),
        Override(
            "merge_request_fail",
            "Fail merge request",
            "merge_request",
            TownPermission.FAIL_MR,
            "Fails the MR bead (failure code failed_by_user). It is terminal afterwards: "
            "it can never be reopened.",
            merge_request_fail,
            _mr_allows("fail"),
            danger=True,
            reason_required=True,
            refusal=_mr_refusal("fail"),
        ),
        Override(
            "bead_redispatch",
            "Re-dispatch",
            "bead",
            TownPermission.REDISPATCH,
            "Resets the bead's dispatch attempts and back-off; an in-progress issue goes back "
            "to open and its agent is unhooked.",
            bead_redispatch,
            _bead_redispatchable,
            refusal=_bead_redispatch_refusal,
        ),
        Override(
            "convoy_end_suppression",
            "End suppression",
            "convoy",
            TownPermission.END_SUPPRESSION,
            "Ends the respawn suppression: the normal landing rules resume (a new landing MR "
            "after the cool-down, counting an attempt).",
            convoy_end_suppression,
            lambda convoy: convoy.respawn_suppressed_since is not None,
        ),
        Override(
            "convoy_retry_landing",
            "Retry landing",
            "convoy",
            TownPermission.RETRY_LANDING,
            "Moves the failed convoy back to ready to land with its landing attempts reset.",
            convoy_retry_landing,
            lambda convoy: convoy.status == ConvoyStatus.FAILED,
        ),
        Override(
            "convoy_close",
            "Close convoy",
            "convoy",
            TownPermission.CLOSE_CONVOY,
            "Closes the convoy without landing it. Closed is terminal.",
            convoy_close,
            lambda convoy: not convoy.is_terminal,
            danger=True,
            reason_required=True,
        ),
        Override(
            "town_pause",
            "Pause town",
            "town",
            TownPermission.PAUSE_TOWN,
            "Stops all dispatch in the town until it is resumed. PRs keep being watched.",
            town_pause,
            lambda town: not town.paused,
            danger=True,
            reason_required=True,
        ),
        Override(
            "town_resume",
            "Resume town",
            "town",
            TownPermission.PAUSE_TOWN,
            "Dispatch starts again.",
            town_resume,
            lambda town: town.paused,
        ),
    ]
}


def override_run(
    *, override: Override, target: Any, user: Any, reason: str = "", now: datetime | None = None
) -> str:
    """Run an override on its target (the dashboard and the admin both come through here)."""
    return override.service(**{override.target: target}, user=user, reason=reason.strip(), now=now)


def override_register(override: Override) -> None:
    """Add an override to the catalogue (the demo adds its fake-GitHub approval this way, so
    production code never imports the fake GitHub)."""
    OVERRIDES[override.name] = override
