"""Writes to beads. Every status change goes through bead_set_status, which audits it and
refuses to move a terminal bead (domain.md §2: a retry creates a new bead)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from beads.audit import Actor
from beads.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Bead,
    BeadDependency,
    BeadEvent,
    BeadEventKind,
    BeadStatus,
    BeadType,
    DependencyKind,
    MergeRequest,
    Priority,
)

if TYPE_CHECKING:
    from gastown.models import Agent, Convoy, Rig, Town


class TerminalBeadError(Exception):
    """A closed or failed bead was asked to change status."""

    def __init__(self, bead: Bead, to_status: str) -> None:
        self.bead = bead
        super().__init__(
            f"Bead {bead.ref} is {bead.status}, a terminal status; it cannot become "
            f"{to_status}. Create a new bead to retry the work."
        )


def bead_event_record(
    *,
    bead: Bead,
    kind: str,
    actor: Actor,
    note: str = "",
    from_status: str = "",
    to_status: str = "",
    data: dict[str, Any] | None = None,
) -> BeadEvent:
    return BeadEvent.objects.create(
        bead=bead,
        bead_ref=bead.pk,
        bead_title=bead.title[:300],
        town_id=bead.town_id,
        kind=kind,
        actor=actor.label,
        user=actor.user,
        note=note,
        from_status=from_status,
        to_status=to_status,
        data=data or {},
    )


def bead_convoy_problem(*, convoy: Convoy, rig: Rig | None, town_id: int) -> tuple[str, str]:
    """Why a new bead may not join `convoy` as (field, message), or ("", "") when it may.

    One rule for the API and the admin: only an open convoy takes beads (past `open` its work
    is done and its landing is under way or over: a new bead would miss it); a convoy stays
    in its town; a review-then-land convoy's beads belong to the convoy's rig (their MRs
    merge into its feature branch)."""
    from gastown.models import ConvoyStatus, MergeMode

    if convoy.town_id != town_id:
        return "convoy", "The convoy belongs to another town."
    if convoy.status != ConvoyStatus.OPEN:
        return "convoy", (
            f"Convoy {convoy.pk} is {convoy.status}; only an open convoy takes new beads."
        )
    if (
        convoy.merge_mode == MergeMode.REVIEW_THEN_LAND
        and rig is not None
        and rig.pk != convoy.rig_id
    ):
        return "rig", "A review-then-land convoy's beads belong to the convoy's rig."
    return "", ""


class BeadRefused(ValueError):
    """A bead that may not be created as asked; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(message)


def bead_create(
    *,
    town: Town,
    title: str,
    actor: Actor,
    type: str = BeadType.ISSUE,
    rig: Rig | None = None,
    convoy: Convoy | None = None,
    body: str = "",
    priority: str = Priority.MEDIUM,
    labels: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    parent: Bead | None = None,
    status: str = BeadStatus.OPEN,
    note: str = "",
) -> Bead:
    if convoy is not None:
        field, problem = bead_convoy_problem(convoy=convoy, rig=rig, town_id=town.pk)
        if problem:
            raise BeadRefused(field, problem)
    with transaction.atomic():
        bead = Bead.objects.create(
            town=town,
            rig=rig,
            convoy=convoy,
            type=type,
            status=status,
            title=title,
            body=body,
            priority=priority,
            labels=labels or [],
            metadata=metadata or {},
            parent=parent,
            created_by=actor.label,
        )
        if parent is not None:
            BeadDependency.objects.create(
                bead=bead, depends_on=parent, kind=DependencyKind.PARENT_CHILD
            )
        bead_event_record(
            bead=bead, kind=BeadEventKind.CREATED, actor=actor, to_status=status, note=note
        )
    return bead


def bead_set_status(
    *,
    bead: Bead,
    status: str,
    actor: Actor,
    note: str = "",
    failure_code: str = "",
    failure_message: str = "",
    now: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> Bead:
    """Move a bead to `status`, audited. Refuses to move a terminal bead, and the bead of a
    merge request: its status follows the merge request's state, which only
    beads.merge_requests.merge_request_transition moves (an MR bead without one, written
    outside the services, may be closed by hand).
    """
    if bead.type == BeadType.MERGE_REQUEST and MergeRequest.objects.filter(bead=bead).exists():
        raise ValueError(
            f"Bead {bead.ref} is a merge request's: its status follows the merge request's "
            "state (beads.merge_requests.merge_request_transition)."
        )
    return bead_status_write(
        bead=bead,
        status=status,
        actor=actor,
        note=note,
        failure_code=failure_code,
        failure_message=failure_message,
        now=now,
        data=data,
    )


def bead_status_write(
    *,
    bead: Bead,
    status: str,
    actor: Actor,
    note: str = "",
    failure_code: str = "",
    failure_message: str = "",
    now: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> Bead:
    """The status write itself (bead_set_status, and the merge request's transition for its
    bead). Callers outside those two go through them.

    The update is conditional on the status read, so two workers racing on the same bead
    cannot both move it (the loser gets TerminalBeadError or a stale-status error).
    """
    if status not in BeadStatus.values:
        raise ValueError(f"Unknown bead status {status!r}.")
    if bead.status in TERMINAL_STATUSES:
        raise TerminalBeadError(bead, status)
    if bead.status == status:
        return bead
    now = now or timezone.now()
    fields: dict[str, Any] = {"status": status, "updated_at": now}
    if status in TERMINAL_STATUSES:
        fields["closed_at"] = now
    if status == BeadStatus.FAILED:
        fields["failure_code"] = failure_code
        fields["failure_message"] = failure_message
    with transaction.atomic():
        changed = (
            Bead.objects.filter(pk=bead.pk, status=bead.status)
            .exclude(status__in=TERMINAL_STATUSES)
            .update(**fields)
        )
        if changed != 1:
            bead.refresh_from_db(fields=["status"])
            if bead.status in TERMINAL_STATUSES:
                raise TerminalBeadError(bead, status)
            raise StaleBeadError(bead, status)
        from_status = bead.status
        for name, value in fields.items():
            setattr(bead, name, value)
        bead_event_record(
            bead=bead,
            kind=BeadEventKind.STATUS,
            actor=actor,
            note=note or failure_message,
            from_status=from_status,
            to_status=status,
            data={"failure_code": failure_code, **(data or {})} if failure_code else data,
        )
    return bead


def bead_edit(*, bead: Bead, fields: list[str], actor: Actor, where: str) -> None:
    """Save the named fields of an edited bead (never a stale copy of the rest), audited:
    an assignee change as such, any other field as a note naming them."""
    if not fields:
        return
    with transaction.atomic():
        bead.save(update_fields=[*fields, "updated_at"])
        if "assignee" in fields:
            bead_event_record(
                bead=bead,
                kind=BeadEventKind.ASSIGNED,
                actor=actor,
                note=f"Assigned to {bead.assignee or 'nobody'} in {where}.",
                data={"assignee_id": bead.assignee_id},
            )
        others = [name for name in fields if name != "assignee"]
        if others:
            bead_event_record(
                bead=bead,
                kind=BeadEventKind.NOTE,
                actor=actor,
                note=f"Edited in {where}: {', '.join(others)}.",
                data={"fields": others},
            )


def bead_assign(*, bead: Bead, agent: Agent | None) -> None:
    """Set (or clear) the bead's assignee; the caller audits the hook or unhook it goes with."""
    Bead.objects.filter(pk=bead.pk).update(assignee=agent)
    bead.assignee = agent


def bead_dispatch_count(*, bead: Bead, now: datetime) -> None:
    """Count one dispatch attempt, conditional on the count read: a second worker dispatching
    the same bead meanwhile loses (StaleBeadError) instead of counting twice."""
    expected = bead.dispatch_attempts
    changed = Bead.objects.filter(pk=bead.pk, dispatch_attempts=expected).update(
        dispatch_attempts=F("dispatch_attempts") + 1, last_dispatch_attempt_at=now
    )
    if changed != 1:
        raise StaleBeadError(bead, bead.status)
    bead.dispatch_attempts = expected + 1
    bead.last_dispatch_attempt_at = now


def bead_dispatch_reset(*, bead: Bead, now: datetime | None = None) -> bool:
    """Forget a non-terminal bead's dispatch attempts and back-off (a wait on a human counts
    none; a team lead's re-dispatch starts afresh). False when the bead is terminal."""
    fields: dict[str, Any] = {"dispatch_attempts": 0, "last_dispatch_attempt_at": None}
    if now is not None:
        fields["updated_at"] = now
    changed = Bead.objects.filter(pk=bead.pk).exclude(status__in=TERMINAL_STATUSES).update(**fields)
    if changed == 1:
        bead.dispatch_attempts, bead.last_dispatch_attempt_at = 0, None
    return changed == 1


def bead_metadata_set(*, bead: Bead, key: str, value: Any) -> None:
    """Set one key of the bead's metadata, read and written under the bead's row lock."""
    with transaction.atomic():
        locked = Bead.objects.select_for_update().only("metadata").get(pk=bead.pk)
        metadata = {**(locked.metadata or {}), key: value}
        Bead.objects.filter(pk=bead.pk).update(metadata=metadata)
    bead.metadata = metadata


class StaleBeadError(Exception):
    """The bead changed under us (another worker moved it first)."""

    def __init__(self, bead: Bead, to_status: str) -> None:
        self.bead = bead
        super().__init__(
            f"Bead {bead.ref} changed concurrently (now {bead.status}); not moved to {to_status}."
        )


def bead_dependency_problem(*, bead: Bead, blocker: Bead, kind: str) -> str:
    """Why `bead` may not wait for `blocker` ("" when it may): itself, another town, or a
    `blocks` cycle — `blocker` already waits for `bead`, directly or through other beads, so
    none of them could ever start. Closed and failed beads block nothing: a chain through one
    is no cycle. One query for the town's active `blocks` links, walked in memory."""
    if bead.pk == blocker.pk:
        return "A bead cannot depend on itself."
    if bead.town_id != blocker.town_id:
        return "Dependencies must stay within one town."
    if kind == DependencyKind.BLOCKS and dependency_cycle(
        town_id=bead.town_id, waiters=[bead.pk], blockers=[blocker.pk]
    ):
        return (
            f"Bead {blocker.pk} already waits for bead {bead.pk}: making bead {bead.pk} "
            "wait for it would be a dependency cycle (neither could ever start)."
        )
    return ""


def dependency_cycle(*, town_id: int, waiters: list[int], blockers: list[int]) -> int | None:
    """The first of `waiters` that one of `blockers` already waits for, directly or through
    other beads (or is), so making the waiters wait for the blockers closes a cycle; None
    when none does. Closed and failed beads block nothing: a chain through one is no cycle.
    One query for the town's active `blocks` links, walked in memory."""
    targets = set(waiters)
    reached = set(blockers)
    if not targets or not reached:
        return None
    waits_for: dict[int, list[int]] = {}
    for waiting, on in BeadDependency.objects.filter(
        bead__town_id=town_id,
        kind=DependencyKind.BLOCKS,
        bead__status__in=ACTIVE_STATUSES,
        depends_on__status__in=ACTIVE_STATUSES,
    ).values_list("bead_id", "depends_on_id"):
        waits_for.setdefault(waiting, []).append(on)
    frontier = list(reached)
    while frontier:
        for nxt in waits_for.get(frontier.pop(), []):
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    return next((pk for pk in waiters if pk in reached), None)


def bead_add_dependency(*, bead: Bead, blocker: Bead, kind: str = DependencyKind.BLOCKS) -> None:
    """`bead` cannot start until `blocker` is terminal. Raises ValueError saying why not."""
    problem = bead_dependency_problem(bead=bead, blocker=blocker, kind=kind)
    if problem:
        raise ValueError(problem)
    BeadDependency.objects.get_or_create(bead=bead, depends_on=blocker, kind=kind)


def escalation_open(*, town: Town, key: str) -> Bead | None:
    """The open escalation raised with `key`, if any."""
    return (
        Bead.objects.filter(town=town, type=BeadType.ESCALATION, metadata__escalation_key=key)
        .exclude(status__in=TERMINAL_STATUSES)
        .first()
    )


def escalation_raise(
    *,
    town: Town,
    key: str,
    title: str,
    body: str = "",
    rig: Rig | None = None,
    convoy: Convoy | None = None,
    priority: str = Priority.HIGH,
    actor: Actor | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[Bead, bool]:
    """Raise one escalation per `key`: while one with that key is open, return it instead.

    Rules run every few seconds; the key (for example "wait:mr:42") is what keeps a stable
    condition from raising an escalation per tick.
    """
    existing = escalation_open(town=town, key=key)
    if existing is not None:
        return existing, False
    bead = bead_create(
        town=town,
        rig=rig,
        convoy=None,
        type=BeadType.ESCALATION,
        title=title[:300],
        body=body,
        priority=priority,
        labels=["escalation"],
        metadata={
            "escalation_key": key,
            **({"convoy_id": convoy.pk} if convoy else {}),
            **(data or {}),
        },
        actor=actor or Actor.reconciler(),
    )
    return bead, True


def merge_request_create(
    *,
    town: Town,
    title: str,
    branch: str,
    target_branch: str,
    actor: Actor,
    rig: Rig | None = None,
    source: Bead | None = None,
    landing_convoy: Convoy | None = None,
    pr_url: str = "",
    body: str = "",
    adopted: bool = False,
) -> MergeRequest:
    """Create an MR bead (`open`) and its merge request. A PR URL is parsed first, so a
    malformed one is refused (scm.errors.ScmError, kind unrecognized_url) with nothing
    written."""
    from scm.urls import parse_pr_url

    ref = parse_pr_url(pr_url) if pr_url else None
    with transaction.atomic():
        bead = bead_create(
            town=town,
            rig=rig,
            type=BeadType.MERGE_REQUEST,
            title=title,
            body=body,
            actor=actor,
            parent=None,
        )
        return MergeRequest.objects.create(
            bead=bead,
            source=source,
            landing_convoy=landing_convoy,
            branch=branch,
            target_branch=target_branch,
            pr_url=ref.url if ref else "",
            adopted=adopted,
        )


def merge_request_request_check(*, merge_request: MergeRequest, now: datetime) -> None:
    """Make the MR due for a feedback check at once (a re-check, a webhook, an approval)."""
    MergeRequest.objects.filter(pk=merge_request.pk).update(check_requested_at=now, updated_at=now)
    merge_request.check_requested_at = now


#: How many handled rework causes an MR remembers (one per push or review: plenty).
MAX_REWORK_CAUSES = 200


def _rework_causes_locked(mr: MergeRequest) -> list[str] | None:
    """The MR's handled causes, read under a row lock (None: it is gone)."""
    row = (
        MergeRequest.objects.select_for_update()
        .filter(pk=mr.pk)
        .values_list("rework_causes", flat=True)
        .first()
    )
    return None if row is None else list(row or [])


def rework_cause_claim(*, mr: MergeRequest, cause: str) -> bool:
    """Record `cause` as handled for the MR; False when it was already, by this worker or
    another. Every cause is kept (not only the last one), so a review in between does not
    make an old cause new again. The row is locked (SQLite's IMMEDIATE transactions
    serialise the same way), so two workers never both claim a cause."""
    with transaction.atomic():
        causes = _rework_causes_locked(mr)
        if causes is None:
            return False
        if cause in causes:
            mr.rework_causes = causes
            return False
        causes = [*causes, cause][-MAX_REWORK_CAUSES:]
        MergeRequest.objects.filter(pk=mr.pk).update(rework_causes=causes)
        mr.rework_causes = causes
    return True


def rework_cause_release(*, mr: MergeRequest, cause: str) -> None:
    """Give a claimed cause back (what it asked for could not be done): a later check
    handles it again."""
    with transaction.atomic():
        causes = _rework_causes_locked(mr)
        if causes is None:
            return
        causes = [c for c in causes if c != cause]
        MergeRequest.objects.filter(pk=mr.pk).update(rework_causes=causes)
        mr.rework_causes = causes


def rework_request(
    *, mr: MergeRequest, cause: str, summary: str, actor: Actor | None = None
) -> Bead | None:
    """Ask for rework once per cause (domain.md §3): a new review, head SHA or conflict is a new
    cause; a cause handled before (whatever came in between) creates nothing.

    An issue MR gets an issue bead labelled `rework`, child of the MR's source and blocking
    the MR, which B1 dispatches. A landing MR has no owning agent: the team lead gets an
    escalation instead. Returns the bead created, or None when this cause was handled.
    """
    actor = actor or Actor.reconciler()
    with transaction.atomic():
        if not rework_cause_claim(mr=mr, cause=cause):
            return None
        mr_bead = mr.bead
        if mr.landing_convoy_id is not None or mr.source_id is None:
            bead, _ = escalation_raise(
                town=mr_bead.town,
                rig=mr_bead.rig,
                key=f"rework:mr:{mr.pk}:{cause}",
                title=f"Landing PR needs work: {summary}"[:300],
                body=f"{mr.pr_url or mr.branch}: {summary}. A landing MR has no agent; "
                "fix the feature branch or close the convoy.",
                actor=actor,
                data={"merge_request_id": mr.pk, "pr_url": mr.pr_url},
            )
            return bead
        source = mr.source
        assert source is not None
        rework = bead_create(
            town=mr_bead.town,
            rig=mr_bead.rig,
            title=f"Rework: {summary}"[:300],
            body=f"{mr.pr_url or mr.branch}\n\n{summary}\n\nPush fixes to branch {mr.branch}.",
            labels=["rework"],
            metadata={"merge_request_id": mr.pk, "branch": mr.branch, "cause": cause},
            parent=source,
            priority=source.priority,
            actor=actor,
        )
        BeadDependency.objects.create(bead=mr_bead, depends_on=rework, kind=DependencyKind.BLOCKS)
        bead_event_record(
            bead=mr_bead,
            kind=BeadEventKind.NOTE,
            actor=actor,
            note=f"Rework requested (#{rework.pk}): {summary}",
            data={"cause": cause},
        )
    return rework
