"""Agent reports (domain.md §3 "Agent reports"): what an agent tells the control plane.

Each report is one transaction, audited as the agent, and asks for a reconciler tick once it
has committed, so the town moves on at once instead of at the next scheduled visit. The HTTP
API (gastown.api) only wraps these functions.

A report is refused (ReportRefused, nothing written) when it does not match what the control
plane knows: the bead is not this agent's assignment or is terminal; or (ReportInvalid) when a
field is unusable: the branch is no git branch name, the PR URL is not one or points outside
the bead's rig's repository.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from beads.audit import Actor
from beads.merge_requests import (
    MergeRequestTransitionRefused,
    merge_request_transition,
    merge_request_write,
)
from beads.models import (
    Bead,
    BeadEventKind,
    BeadStatus,
    BeadType,
    MergeRequest,
    MergeRequestState,
    ReviewStatus,
    bead_ref,
)
from beads.services import (
    bead_assign,
    bead_event_record,
    bead_metadata_set,
    bead_set_status,
    merge_request_create,
    rework_request,
)
from gastown.models import Agent, AgentRole, AgentStatus, MergeMode, Rig
from gastown.scheduling import enqueue_tick
from scm.errors import ScmError
from scm.urls import PullRequestRef, parse_pr_url

#: An agent that was dispatched (or stalled) and shows a sign of life is working again.
_WAKEABLE = (AgentStatus.IDLE, AgentStatus.STALLED)


class ReportRefused(Exception):
    """The report contradicts what the control plane knows; nothing was written."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ReportInvalid(ReportRefused):
    """A field of the report is unusable whatever the state (a malformed branch name, a PR
    outside the rig's repository); nothing was written. The API answers 400, not 409."""


#: MergeRequest.branch's column width.
MAX_BRANCH_LENGTH = 200
# git check-ref-format's rules, plus git branch's refusal of a leading "-" (it would read as
# an option on a command line): https://git-scm.com/docs/git-check-ref-format
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def _check_branch(branch: str) -> None:
    problem = ""
    if len(branch) > MAX_BRANCH_LENGTH:
        problem = f"is longer than {MAX_BRANCH_LENGTH} characters"
    elif match := _REF_FORBIDDEN.search(branch):
        problem = f"contains {match.group()!r}"
    elif branch == "@" or branch.startswith(("-", "/")) or branch.endswith(("/", ".")):
        problem = "may not be '@', start with '-' or '/', or end with '/' or '.'"
    elif any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        problem = "has a part that starts with '.' or ends with '.lock'"
    if problem:
        raise ReportInvalid(
            f"The branch {branch!r} is not a valid git branch name: it {problem}.", field="branch"
        )


def _check_pr_repo(ref: PullRequestRef, rig: Rig) -> None:
    """The town only watches and merges PRs of its own rigs: a PR elsewhere (another town's
    repository, someone else's) would be merged with this town's credentials."""
    # GitHub compares owner and repository names case-insensitively.
    if ref.repo.lower() != rig.repo.lower():
        raise ReportInvalid(
            f"The pull request is in {ref.repo}, but the bead's rig {rig.name} is the "
            f"repository {rig.repo}; report a pull request of {rig.repo}.",
            field="pr_url",
        )


def _tick_on_commit(town_id: int) -> None:
    transaction.on_commit(lambda: enqueue_tick(town_id))


def _locked_agent(agent: Agent) -> Agent:
    """Re-read the agent under a row lock: a report and a reconciler tick must not both move
    it (SQLite's IMMEDIATE transactions serialise the same way)."""
    locked = Agent.objects.select_for_update().get(pk=agent.pk)
    agent.hooked_bead_id = locked.hooked_bead_id
    agent.status = locked.status
    return locked


def _locked_bead(bead: Bead) -> Bead:
    locked = Bead.objects.select_for_update().get(pk=bead.pk)
    bead.status = locked.status
    return locked


def _require_hooked(agent: Agent, bead: Bead) -> None:
    if agent.hooked_bead_id != bead.pk:
        if agent.hooked_bead_id is None:
            held = "it holds no assignment"
        else:
            held = f"its assignment is {bead_ref(agent.hooked_bead_id)}"
        raise ReportRefused(
            f"Bead {bead.ref} is not assigned to agent {agent.name} ({held}).", field="bead"
        )
    if bead.is_terminal:
        raise ReportRefused(
            f"Bead {bead.ref} is {bead.status}, a terminal status; it takes no more reports.",
            field="bead",
        )


def _unhook(*, agent: Agent, bead: Bead, actor: Actor, now: datetime, note: str) -> None:
    Agent.objects.filter(pk=agent.pk).update(
        hooked_bead=None,
        status=AgentStatus.IDLE,
        last_activity_at=now,
        last_heartbeat_at=now,
        updated_at=now,
    )
    agent.hooked_bead = None
    agent.status = AgentStatus.IDLE
    agent.last_activity_at = now
    agent.last_heartbeat_at = now
    bead_event_record(
        bead=bead, kind=BeadEventKind.UNHOOKED, actor=actor, note=note, data={"agent": agent.name}
    )


def _mark_alive(*, agent: Agent, now: datetime) -> None:
    """A heartbeat: the agent is alive now, and working if it holds an assignment."""
    Agent.objects.filter(pk=agent.pk).update(
        last_heartbeat_at=now, last_activity_at=now, updated_at=now
    )
    agent.last_heartbeat_at = now
    agent.last_activity_at = now
    if agent.hooked_bead_id is not None and agent.status in _WAKEABLE:
        woke = Agent.objects.filter(
            pk=agent.pk, status__in=_WAKEABLE, hooked_bead__isnull=False
        ).update(status=AgentStatus.WORKING)
        if woke:
            agent.status = AgentStatus.WORKING


def agent_heartbeat(*, agent: Agent, now: datetime | None = None) -> Agent:
    """Keep an agent live (domain.md §2: working and heartbeated within 90 s). An idle or stalled
    agent that holds an assignment becomes working."""
    now = now or timezone.now()
    with transaction.atomic():
        _locked_agent(agent)
        _mark_alive(agent=agent, now=now)
        _tick_on_commit(agent.town_id)
    return agent


def agent_fetch_assignment(*, agent: Agent, now: datetime | None = None) -> Bead | None:
    """The agent's hooked bead, or None. Counts as a heartbeat.

    Without an agent runtime (settings.AGENT_RUNTIME_URL empty) nothing else tells the control
    plane that a dispatched agent started, so fetching its assignment makes it `working`, and
    an issue still `open` becomes `in_progress`. With a runtime, the runtime's heartbeats do.
    """
    now = now or timezone.now()
    actor = Actor.for_agent(agent)
    with transaction.atomic():
        _locked_agent(agent)
        Agent.objects.filter(pk=agent.pk).update(
            last_heartbeat_at=now, last_activity_at=now, updated_at=now
        )
        agent.last_heartbeat_at = now
        agent.last_activity_at = now
        bead = (
            Bead.objects.select_related("rig", "convoy").filter(pk=agent.hooked_bead_id).first()
            if agent.hooked_bead_id
            else None
        )
        if (
            bead is not None
            and bead.type == BeadType.MERGE_REQUEST
            and not MergeRequest.objects.filter(bead=bead).exclude(pr_url="").exists()
        ):
            # The refinery's MR has no PR yet: nothing to review until the reconciler opens
            # (or adopts) it and notifies the refinery (docs/architecture.md, "Side effects
            # and crashes").
            bead = None
        if bead is not None and not settings.AGENT_RUNTIME_URL:
            _mark_alive(agent=agent, now=now)
            if bead.type == BeadType.ISSUE and bead.status == BeadStatus.OPEN:
                bead_set_status(
                    bead=bead,
                    status=BeadStatus.IN_PROGRESS,
                    actor=actor,
                    note="The agent fetched its assignment.",
                    now=now,
                )
        _tick_on_commit(agent.town_id)
    return bead


def _is_rework(bead: Bead) -> bool:
    return "rework" in (bead.labels or []) and bool((bead.metadata or {}).get("merge_request_id"))


def _target_branch(bead: Bead) -> str:
    convoy = bead.convoy
    if convoy is not None and convoy.merge_mode == MergeMode.REVIEW_THEN_LAND:
        if not convoy.feature_branch:
            raise ReportRefused(
                f"Convoy #{convoy.pk} ({convoy.title}) has no feature branch yet; report "
                "again once the convoy has started.",
                field="bead",
            )
        return convoy.feature_branch
    assert bead.rig is not None
    return bead.rig.default_branch


def agent_report_done(
    *,
    agent: Agent,
    bead: Bead,
    branch: str,
    pr_url: str = "",
    now: datetime | None = None,
) -> MergeRequest:
    """A polecat finished its issue bead (domain.md §3).

    A new MR bead (`open`) lands `branch` into the convoy's feature branch (review-then-land)
    or the rig's default branch; the issue goes to `in_review` (its assignee stays); the agent
    is unhooked and idle. A rework bead reported done creates no MR: the fix was pushed to the
    existing MR's branch, so the rework bead closes and that MR is due for a check now.
    """
    now = now or timezone.now()
    actor = Actor.for_agent(agent)
    branch = (branch or "").strip()
    pr_url = (pr_url or "").strip()
    ref: PullRequestRef | None = None
    if branch:
        _check_branch(branch)
    if pr_url:
        try:
            ref = parse_pr_url(pr_url)
        except ScmError as exc:
            raise ReportInvalid(exc.message, field="pr_url") from None
    with transaction.atomic():
        _locked_agent(agent)
        _locked_bead(bead)
        _require_hooked(agent, bead)
        if bead.type != BeadType.ISSUE:
            raise ReportRefused(
                f"Bead {bead.ref} is a {bead.type} bead; only issue beads are reported done "
                "(a refinery reports a review).",
                field="bead",
            )
        existing = _rework_merge_request(bead)
        if existing is not None:
            mr = _rework_done(
                agent=agent, bead=bead, mr=existing, pr_url=pr_url, actor=actor, now=now
            )
        else:
            if not branch:
                raise ReportInvalid("Name the branch the work was pushed to.", field="branch")
            if bead.rig is None:
                raise ReportRefused(
                    f"Bead {bead.ref} belongs to no rig, so there is no repository to merge into.",
                    field="bead",
                )
            if ref is not None:
                _check_pr_repo(ref, bead.rig)
            try:
                mr = merge_request_create(
                    town=bead.town,
                    rig=bead.rig,
                    title=bead.title,
                    branch=branch,
                    target_branch=_target_branch(bead),
                    source=bead,
                    pr_url=pr_url,
                    actor=actor,
                )
            except ScmError as exc:
                raise ReportInvalid(exc.message, field="pr_url") from None
            bead_set_status(
                bead=bead,
                status=BeadStatus.IN_REVIEW,
                actor=actor,
                note=f"Done on {branch}: MR {bead_ref(mr.bead_id)}.",
                now=now,
                data={"merge_request_id": mr.pk, "branch": branch, "pr_url": mr.pr_url},
            )
        _unhook(agent=agent, bead=bead, actor=actor, now=now, note="Reported done.")
        _tick_on_commit(bead.town_id)
    return mr


def _rework_merge_request(bead: Bead) -> MergeRequest | None:
    if not _is_rework(bead):
        return None
    return (
        MergeRequest.objects.select_related("bead", "bead__rig")
        .filter(pk=bead.metadata["merge_request_id"], bead__town_id=bead.town_id)
        .first()
    )


def _rework_done(
    *, agent: Agent, bead: Bead, mr: MergeRequest, pr_url: str, actor: Actor, now: datetime
) -> MergeRequest:
    ref = parse_pr_url(pr_url) if pr_url and not mr.pr_url else None
    if ref is not None:
        rig = mr.bead.rig
        if rig is None:
            raise ReportRefused(
                f"MR {bead_ref(mr.bead_id)} belongs to no rig, so no pull request can be "
                "attached to it.",
                field="bead",
            )
        _check_pr_repo(ref, rig)
    bead_set_status(
        bead=bead,
        status=BeadStatus.CLOSED,
        actor=actor,
        note=f"Rework pushed to {mr.branch}.",
        now=now,
        data={"merge_request_id": mr.pk},
    )
    updates: dict[str, Any] = {}
    if not mr.bead.is_terminal:
        updates["check_requested_at"] = now
    if ref is not None:
        updates.update(pr_url=ref.url)
    merge_request_write(merge_request=mr, now=now, **updates)
    bead_event_record(
        bead=mr.bead,
        kind=BeadEventKind.NOTE,
        actor=actor,
        note=f"Rework {bead.ref} pushed; the PR is due for a check.",
        data={"rework_bead_id": bead.pk},
    )
    return mr


def agent_report_failure(
    *, agent: Agent, bead: Bead, message: str, now: datetime | None = None
) -> Bead:
    """The agent could not finish its bead (domain.md §3).

    An issue goes back to `open` (unassigned, so B1 dispatches it again after its back-off;
    the attempt was counted at dispatch) with the message kept in its audit trail and in
    metadata["last_failure"]; past the effective max dispatch attempts it fails
    (`dispatch_exhausted`). An MR without a PR fails (`agent_failed`); an MR whose PR exists
    goes back to `open` for another review, since its PR is still watched (domain.md §3: the
    guarantee). The agent is unhooked and idle either way.
    """
    now = now or timezone.now()
    actor = Actor.for_agent(agent)
    message = (message or "").strip() or "The agent reported a failure without a message."
    with transaction.atomic():
        _locked_agent(agent)
        locked = _locked_bead(bead)
        _require_hooked(agent, bead)
        bead_metadata_set(
            bead=locked,
            key="last_failure",
            value={"message": message, "agent": agent.name, "at": now.isoformat()},
        )
        bead.metadata = locked.metadata
        bead_event_record(
            bead=bead,
            kind=BeadEventKind.NOTE,
            actor=actor,
            note=f"Agent reported failure: {message}",
            data={"failure": message, "attempts": bead.dispatch_attempts},
        )
        if bead.type == BeadType.MERGE_REQUEST:
            _mr_failure(bead=bead, message=message, actor=actor, now=now)
        elif bead.type == BeadType.ISSUE:
            limit = bead.town.effective(bead.rig).max_dispatch_attempts
            if bead.dispatch_attempts >= limit:
                bead_set_status(
                    bead=bead,
                    status=BeadStatus.FAILED,
                    actor=actor,
                    failure_code="dispatch_exhausted",
                    failure_message=f"Failed after {bead.dispatch_attempts} of {limit} "
                    f"dispatch attempts; last: {message}",
                    now=now,
                )
            else:
                bead_set_status(
                    bead=bead,
                    status=BeadStatus.OPEN,
                    actor=actor,
                    note=f"Back to open after attempt {bead.dispatch_attempts} of {limit}: "
                    f"{message}",
                    now=now,
                )
                if bead.assignee_id is not None:
                    bead_assign(bead=bead, agent=None)
                    bead_event_record(
                        bead=bead,
                        kind=BeadEventKind.ASSIGNED,
                        actor=actor,
                        note=f"Unassigned from {agent.name} after its failure.",
                    )
        else:
            raise ReportRefused(f"Bead {bead.ref} is an {bead.type}; agents do not work on it.")
        _unhook(agent=agent, bead=bead, actor=actor, now=now, note="Reported failure.")
        _tick_on_commit(bead.town_id)
    return bead


def _mr_failure(*, bead: Bead, message: str, actor: Actor, now: datetime) -> None:
    mr = MergeRequest.objects.filter(bead=bead).first()
    if mr is None:  # an MR bead written without its merge request: nothing else moves it
        bead_set_status(
            bead=bead,
            status=BeadStatus.FAILED,
            actor=actor,
            failure_code="agent_failed",
            failure_message=message,
            now=now,
        )
        return
    mr.bead = bead
    try:
        if not mr.pr_url:
            merge_request_transition(
                merge_request=mr,
                transition="fail",
                actor=actor,
                failure_code="agent_failed",
                failure_message=message,
                now=now,
            )
        elif mr.state != MergeRequestState.OPEN:
            merge_request_transition(
                merge_request=mr,
                transition="requeue",
                actor=actor,
                note=f"The review failed; the PR is still watched. {message}",
                now=now,
            )
    except MergeRequestTransitionRefused as refused:
        raise ReportRefused(refused.message, field="bead") from None


def refinery_report_review(
    *,
    agent: Agent,
    merge_request: MergeRequest,
    passed: bool,
    summary: str = "",
    now: datetime | None = None,
) -> MergeRequest:
    """The refinery's review of an MR (domain.md §3): passed (it may merge when GitHub agrees) or
    changes requested (one rework bead per review). The refinery is unhooked.

    Accepted from the refinery hooked to the MR, or from its rig's refinery after R7 unhooked
    it while the PR waited on a human: the review is still the rig's verdict.
    """
    now = now or timezone.now()
    actor = Actor.for_agent(agent)
    mr = merge_request
    if agent.role != AgentRole.REFINERY:
        raise ReportRefused(
            f"Agent {agent.name} is a {agent.role}; only a refinery reports reviews.",
            field="agent",
        )
    with transaction.atomic():
        _locked_agent(agent)
        bead = _locked_bead(mr.bead)
        hooked_here = agent.hooked_bead_id == bead.pk
        if not hooked_here and (agent.rig_id is None or agent.rig_id != bead.rig_id):
            _require_hooked(agent, bead)
        if bead.is_terminal:
            raise ReportRefused(
                f"MR {bead_ref(bead.pk)} is {bead.status}; a review no longer applies.",
                field="merge_request",
            )
        if not MergeRequest.objects.filter(pk=mr.pk).exclude(pr_url="").exists():
            # Its PR is not recorded yet (being opened, or the opening died): a review of no
            # PR would let auto-merge trust a verdict on code nobody saw.
            raise ReportRefused(
                f"Merge request #{mr.pk} has no pull request yet; review it once its PR is "
                "opened (its dispatch carries the PR's URL).",
                field="merge_request",
            )
        status = ReviewStatus.PASSED if passed else ReviewStatus.CHANGES_REQUESTED
        merge_request_write(
            merge_request=mr,
            now=now,
            new_version=False,  # the check never writes the review back
            review_status=status,
            reviewed_at=now,
            # A passed review may unlock the merge: check the PR now, not at the next poll.
            check_requested_at=now,
        )
        bead_event_record(
            bead=bead,
            kind=BeadEventKind.FLAG,
            actor=actor,
            note=f"Review {status.label.lower()}" + (f": {summary}" if summary else "."),
            data={"review_status": status.value},
        )
        if not passed:
            rework_request(
                mr=mr,
                cause=f"refinery:{now.isoformat()}",
                summary=summary or "The refinery requested changes.",
                actor=actor,
            )
        if hooked_here:
            _unhook(agent=agent, bead=bead, actor=actor, now=now, note="Review reported.")
        else:
            Agent.objects.filter(pk=agent.pk).update(
                last_heartbeat_at=now, last_activity_at=now, updated_at=now
            )
        _tick_on_commit(bead.town_id)
    return mr
