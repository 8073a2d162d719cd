"""What one snapshot means for its MR: the field values to store and the edges crossed.

Pure functions of the MR as read, the snapshot and the clock, so the check can store many
MRs in one bulk write and record telemetry and rework only at the edges (domain.md §3, §6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from beads.models import (
    Blocker,
    MergeAttempt,
    MergeRefusalKind,
    MergeRequest,
    human_wait_goes_on,
)
from gastown.models import EffectiveSettings, TelemetryEvent
from gastown.services.merge_requests import wait_began_event, wait_ended_event
from scm.blocker import derive_blocker, held_by
from scm.types import LabelEvent, PullRequestSnapshot, QueueRemoval

#: The MR fields one observation writes (the same list for every MR, so a bulk update fits).
OBSERVED_FIELDS = (
    "pr_state",
    "review_decision",
    "merge_state_status",
    "mergeable",
    "is_draft",
    "checks_state",
    "failing_checks",
    "unresolved_threads",
    "blocking_threads",
    "requested_reviewers",
    "approvals_missing",
    "queue_position",
    "head_sha",
    "snapshot_at",
    "blocker",
    "blocker_detail",
    "waiting_since",
    "auto_merge_ready_since",
    "consecutive_transient_failures",
    "consecutive_malformed_failures",
    "merge_refusal_id",
    "merge_refusal_waits_on",
    "merge_hold_from",
    "merge_requested_at",
)

# How a wait on a human ended, by the blocker observed after it (domain.md §6).
_ENDED_BY = {
    Blocker.MERGED: "merged",
    Blocker.CLOSED: "closed",
    Blocker.DRAFT: "draft",
    Blocker.CONFLICT: "conflict",
    Blocker.CHANGES_REQUESTED: "changes_requested",
}

# Blockers that hide whether a human is still awaited (GitHub reports them before a missing
# review): while one shows and GitHub has not said the review is done, the wait goes on.
#: A merge refusal that stands for its head and state holds the MR at this blocker, whatever
#: GraphQL's merge state says (GitHub's merge endpoint knows rules GraphQL may not show).
HELD_BY_REFUSAL = {
    Blocker.HUMAN_REVIEW.value: Blocker.HUMAN_REVIEW,
    Blocker.CHECKS_PENDING.value: Blocker.CHECKS_PENDING,
    Blocker.CHECKS_FAILING.value: Blocker.CHECKS_FAILING,
}

#: How long a merge refusal holds when nothing it depends on visibly changed. GitHub's merge
#: endpoint knows what its GraphQL answer may not show (an approval by someone nobody asked,
#: a missing required check that reported straight to success): past the hold, GitHub is
#: asked again. Each identical refusal in a row doubles the hold, up to REFUSAL_HOLD_MAX, so
#: a PR that keeps waiting costs a handful of calls a day, not one per poll (domain.md §1); a
#: review submitted (webhook) lifts a review refusal's hold at once.
REFUSAL_HOLD = timedelta(minutes=15)
REFUSAL_HOLD_MAX = timedelta(hours=6)
#: The hold after a merge call GitHub failed to answer (a 5xx, a time-out): it may have merged,
#: so the PR is read first, and the call is sent again only after this back-off, doubled for
#: each such answer in a row, at most MERGE_BACK_OFF_MAX (no merge call per poll).
MERGE_BACK_OFF = timedelta(minutes=1)
MERGE_BACK_OFF_MAX = timedelta(minutes=30)


@dataclass(frozen=True)
class Rework:
    cause: str
    summary: str
    update_branch: bool = False  # `behind`: GitHub's update-branch instead of an agent
    escalate: bool = False  # nothing to push: the team lead is told instead of an agent


@dataclass
class Observation:
    blocker: str
    fields: dict[str, Any]
    changed: bool  # a field other than the bookkeeping timestamps differs from the MR's
    wait_began: bool = False
    wait_ended: bool = False
    wait_ended_how: str = ""
    wait_started_at: datetime | None = None  # the ended wait's waiting_since
    wait_reviewers: list[str] = field(default_factory=list)  # whom the ended wait was on
    rework: Rework | None = None
    notes: list[str] = field(default_factory=list)
    merge_commit_sha: str = ""  # the snapshot's, for a merged PR


def refusal_state(kind: str, snapshot: PullRequestSnapshot) -> str:
    """What a merge refusal of `kind` depends on besides the head: when it changes, GitHub
    may answer differently and is asked again (once). A review refusal depends on the review
    decision and on who is still asked to review (an approval by a requested reviewer takes
    them off the list even when the decision does not move: null, or APPROVED already); a
    check refusal on the check rollup, each check with its state. What the snapshot does not
    show (an approval nobody asked for, a check that went straight to success) is covered
    by REFUSAL_HOLD."""
    if kind == Blocker.HUMAN_REVIEW:
        reviewers = ",".join(sorted(snapshot.requested_reviewers))
        return f"{snapshot.review_decision or '-'}|{reviewers}"[:480]
    if kind in {Blocker.CHECKS_PENDING, Blocker.CHECKS_FAILING}:
        failing = ",".join(sorted({f"{c.name}:{c.state}" for c in snapshot.failing_checks}))
        pending = ",".join(sorted({f"{c.name}:{c.state}" for c in snapshot.pending_checks}))
        state = f"{snapshot.merge_state_status}|{snapshot.checks}|{failing}|{pending}"
        return state[:480]
    if kind == "wrong_base":
        return snapshot.base_ref[:480]  # a new base lifts it
    return ""  # a final refusal depends on the head only


def standing_refusal(mr: MergeRequest) -> MergeAttempt | None:
    """The attempt whose refusal the MR remembers (loaded with the MR by the check)."""
    return mr.merge_refusal if mr.merge_refusal_id is not None else None


def refusal_kind(mr: MergeRequest) -> str:
    refusal = standing_refusal(mr)
    return refusal.refusal_kind if refusal is not None else ""


def refusal_head(mr: MergeRequest) -> str:
    refusal = standing_refusal(mr)
    return refusal.head_sha if refusal is not None else ""


def refusal_stands(mr: MergeRequest, snapshot: PullRequestSnapshot) -> bool:
    """Whether the MR's last merge refusal still answers for this snapshot's head and state
    (how long it holds is refusal_expired's business)."""
    kind = refusal_kind(mr)
    if not kind or refusal_head(mr) != snapshot.head_sha:
        return False
    now_state = refusal_state(kind, snapshot)
    if kind == Blocker.HUMAN_REVIEW:
        # Only a requested reviewer leaving the list (an approval) is news: asking one more
        # reviewer changes nothing GitHub's merge endpoint would answer.
        decision, _, reviewers = mr.merge_refusal_waits_on.partition("|")
        now_decision, _, now_reviewers = now_state.partition("|")
        asked = set(filter(None, reviewers.split(",")))
        return decision == now_decision and asked <= set(filter(None, now_reviewers.split(",")))
    return mr.merge_refusal_waits_on == now_state


def refusal_hold(mr: MergeRequest) -> timedelta:
    """The one rule of the hold: REFUSAL_HOLD (MERGE_BACK_OFF after no answer), doubled for
    each identical refusal in a row (the attempt rows count them), at most REFUSAL_HOLD_MAX
    (MERGE_BACK_OFF_MAX)."""
    refusal = standing_refusal(mr)
    repeats = refusal.repeats if refusal is not None else 1
    doublings = min(max(repeats - 1, 0), 10)
    if refusal is not None and refusal.refusal_kind == MergeRefusalKind.NO_ANSWER:
        return min(MERGE_BACK_OFF * 2**doublings, MERGE_BACK_OFF_MAX)
    return min(REFUSAL_HOLD * 2**doublings, REFUSAL_HOLD_MAX)


def backing_off(mr: MergeRequest, *, now: datetime) -> bool:
    """Whether GitHub failed to answer this head's last merge call less than its back-off
    ago: no merge call goes out meanwhile (one may still be in flight)."""
    return (
        refusal_kind(mr) == MergeRefusalKind.NO_ANSWER
        and refusal_head(mr) == mr.head_sha
        and not refusal_expired(mr, now=now)
    )


def refusal_expired(mr: MergeRequest, *, now: datetime) -> bool:
    """Whether the MR's merge refusal is older than its hold: GitHub may be asked again."""
    since = mr.merge_hold_from
    return since is None or now - since >= refusal_hold(mr)


def held_by_refusal(mr: MergeRequest) -> bool:
    """Whether the MR, as stored, sits at the blocker a merge refusal holds it at."""
    held = HELD_BY_REFUSAL.get(refusal_kind(mr))
    return held is not None and mr.blocker == held


#: The blocker a PR dropped by the merge queue is held at for the head it dropped, by cause
#: (QueueRemoval.cause); its rework cause is QUEUE_DROP_CAUSE, so a dropped head is asked
#: about once and never enqueued again (a push, or GitHub's queue taking it back, moves on).
QUEUE_DROP_BLOCKERS = {
    "checks_failing": Blocker.CHECKS_FAILING,
    "conflict": Blocker.CONFLICT,
    "other": Blocker.MERGE_QUEUE,
}
QUEUE_DROP_CAUSE = "merge_queue_dropped:{cause}:{sha}"


def queue_drop(
    mr: MergeRequest, snapshot: PullRequestSnapshot, removal: QueueRemoval | None
) -> tuple[str, Rework] | None:
    """The cause the merge queue dropped this head for, as the blocker it holds the PR at and
    its rework: from GitHub's removal event when the check saw the PR leave the queue, else
    from the rework cause remembered for this head."""
    sha = snapshot.head_sha
    cause = ""
    reason = ""
    if removal is not None and removal.head_sha in {None, sha}:
        cause, reason = removal.cause, removal.reason
    else:
        for key in QUEUE_DROP_BLOCKERS:
            if QUEUE_DROP_CAUSE.format(cause=key, sha=sha) in (mr.rework_causes or []):
                cause = key
    if not cause or snapshot.queue_entry is not None or snapshot.state != "OPEN":
        return None
    what = {
        "checks_failing": "a required check failed on its merge group",
        "conflict": "it conflicts with the PRs ahead of it",
        "other": "it was removed",
    }[cause]
    summary = f"the merge queue dropped {mr.pr_name}: {what}" + (f" ({reason})" if reason else "")
    rework = Rework(
        QUEUE_DROP_CAUSE.format(cause=cause, sha=sha), summary, escalate=cause == "other"
    )
    return QUEUE_DROP_BLOCKERS[cause], rework


def hold_labels(settings: EffectiveSettings) -> tuple[str, ...]:
    return (settings.hold_label,) if settings.hold_label else ()


def opted_in(snapshot: PullRequestSnapshot, settings: EffectiveSettings) -> bool:
    """Whether the PR carries the town's opt-in label, when the town requires one."""
    return not settings.require_label or held_by(snapshot, (settings.require_label,)) is not None


def blocker_detail(
    snapshot: PullRequestSnapshot, blocker: str, *, label: LabelEvent | None = None
) -> str:
    """What the blocker is about, in words (shown beside it): who added the hold label, the
    queue entry, or GitHub's own auto-merge that will merge the PR."""
    if blocker == Blocker.HELD_BY_LABEL:
        if label is None:
            return "held by its hold label (who added it is not known)"
        return f"held by the label {label.label}, added by {label.actor or 'a deleted account'}"[
            :200
        ]
    entry = snapshot.queue_entry
    if blocker == Blocker.QUEUED and entry is not None:
        state = entry.state.lower().replace("_", " ")
        return f"in the merge queue of {snapshot.base_ref} ({state})"
    request = snapshot.auto_merge
    if request is not None and blocker not in {Blocker.MERGED, Blocker.CLOSED}:
        who = request.enabled_by or "a deleted account"
        return (
            f"GitHub merges it once its rules are met: auto-merge ({request.method.lower()}) "
            f"enabled by {who}"
        )[:200]
    return ""


def _small(count: int | None) -> int | None:
    return None if count is None else min(count, 32_767)


def queue_position(snapshot: PullRequestSnapshot) -> int | None:
    """1 for the next PR the queue merges; None when not queued or unreadable (position 0)."""
    entry = snapshot.queue_entry
    return entry.position if entry is not None and entry.position > 0 else None


def snapshot_fields(
    snapshot: PullRequestSnapshot, *, blocker: str, now: datetime
) -> dict[str, Any]:
    return {
        "pr_state": snapshot.state[:20],
        "review_decision": (snapshot.review_decision or "")[:30],
        "merge_state_status": snapshot.merge_state_status[:30],
        "mergeable": snapshot.mergeable[:20],
        "is_draft": snapshot.is_draft,
        "checks_state": snapshot.checks[:20],
        "failing_checks": sorted({c.name for c in snapshot.failing_checks}),
        "unresolved_threads": snapshot.unresolved_threads,
        "blocking_threads": snapshot.blocking_threads,
        "requested_reviewers": list(snapshot.requested_reviewers),
        "approvals_missing": _small(snapshot.approvals_missing),
        "queue_position": queue_position(snapshot),
        "head_sha": snapshot.head_sha[:64],
        "snapshot_at": now,
        "blocker": blocker,
        "blocker_detail": blocker_detail(snapshot, blocker),
    }


def observe(
    mr: MergeRequest,
    snapshot: PullRequestSnapshot,
    *,
    settings: EffectiveSettings,
    now: datetime,
    retry: bool = False,
    queue_removal: QueueRemoval | None = None,
    hold_label_event: LabelEvent | None = None,
) -> Observation:
    """`queue_removal`: why the merge queue last dropped the PR, when this check saw it leave
    the queue unmerged (GitHubClient.queue_removals). `hold_label_event`: who added the hold
    label, when this check saw it arrive (GitHubClient.label_events); a PR held before keeps
    what the MR says.

    `retry`: the fresh check of a held MR whose refusal hold expired (merge.py). The hold
    is not applied, so GitHub is asked again; the refusal is kept, and so is a wait on a
    human it began (no resolved/detected pair per retry): the merge call's answer ends or
    renews them."""
    blocker = str(
        derive_blocker(
            snapshot,
            required_checks_only=settings.required_checks_only,
            hold_labels=hold_labels(settings),
        )
    )
    dropped = queue_drop(mr, snapshot, queue_removal)
    if dropped is not None and blocker in {Blocker.READY, Blocker.UNKNOWN, Blocker.BEHIND}:
        # The queue refused this head: hold it at the cause, never enqueue it again (no loop).
        blocker = dropped[0]
    stands = refusal_stands(mr, snapshot)
    kind = refusal_kind(mr)
    # A review refusal of this head whose reviewers moved (an approval, perhaps): not held any
    # more, but remembered, so the wait on a human it began goes on until a merge call
    # answers instead of ending as "approved" and starting again on the next refusal.
    review_lapsed = (
        not stands and kind == Blocker.HUMAN_REVIEW and refusal_head(mr) == snapshot.head_sha
    )
    if stands or review_lapsed:
        held = HELD_BY_REFUSAL.get(kind)
        if stands and blocker == Blocker.READY and held is not None and not retry:
            # The merge call refused this head in this state, whatever the merge state
            # says: hold the MR where GitHub's answer put it, no new attempt (no loop).
            blocker = held
        state = mr.merge_refusal_waits_on
        if stands and kind == Blocker.HUMAN_REVIEW:
            # Reviewers asked since the refusal join what it waits on, so their approval
            # (their leaving the list) lifts it too.
            state = refusal_state(kind, snapshot)
        refusal: tuple[int | None, str, datetime | None] = (
            mr.merge_refusal_id,
            state,
            mr.merge_hold_from,
        )
    else:
        refusal = (None, "", None)  # something changed: GitHub may answer differently now
    fields = snapshot_fields(snapshot, blocker=blocker, now=now)
    if blocker == Blocker.HELD_BY_LABEL:
        fields["blocker_detail"] = (
            blocker_detail(snapshot, blocker, label=hold_label_event)
            if hold_label_event is not None or mr.blocker != Blocker.HELD_BY_LABEL
            else mr.blocker_detail
        )
    elif blocker == Blocker.READY and not opted_in(snapshot, settings):
        fields["blocker_detail"] = (
            f"not merged by gastown without the label {settings.require_label}"
        )
    # A team lead's merge now is for the PR as they saw it: ready, at this head. A push or any
    # blocker withdraws it, so it cannot merge a different PR days later without the delay.
    still_asked = blocker == Blocker.READY and snapshot.head_sha == mr.head_sha
    fields["merge_requested_at"] = mr.merge_requested_at if still_asked else None
    (
        fields["merge_refusal_id"],
        fields["merge_refusal_waits_on"],
        fields["merge_hold_from"],
    ) = refusal
    terminal = mr.bead.is_terminal
    obs = Observation(
        blocker=blocker, fields=fields, changed=False, merge_commit_sha=snapshot.merge_commit_sha
    )

    # waiting_since: the first observation of the current wait on a human, kept while it
    # lasts. GitHub still computing (`unknown`) neither begins nor ends a wait: a push or a
    # base change makes it say UNKNOWN for a moment, and that is no news about reviewers.
    waiting_since = mr.waiting_since
    if blocker == Blocker.HUMAN_REVIEW:
        if waiting_since is None:
            waiting_since = now
            obs.wait_began = not terminal
    elif (
        blocker != Blocker.UNKNOWN
        and waiting_since is not None
        and not human_wait_goes_on(blocker, snapshot.review_decision)
        and not (
            # GitHub's merge endpoint said a review is missing and this head now looks ready
            # (a retry, or a reviewer left the list): the wait goes on until the merge call
            # answers, so one wait is never split into two.
            blocker == Blocker.READY
            and kind == Blocker.HUMAN_REVIEW
            and refusal_head(mr) == snapshot.head_sha
        )
    ):
        obs.wait_ended = not terminal
        obs.wait_started_at = waiting_since
        obs.wait_ended_how = _ended_how(blocker, snapshot)
        obs.wait_reviewers = list(mr.requested_reviewers or [])
        waiting_since = None
    fields["waiting_since"] = waiting_since

    # The auto-merge timer runs while the PR is continuously ready, unless GitHub's own
    # auto-merge is on: GitHub merges it, gastown never a second time.
    # A town that requires an opt-in label merges only the PRs that carry it.
    if (
        blocker == Blocker.READY
        and not terminal
        and snapshot.auto_merge is None
        and opted_in(snapshot, settings)
    ):
        fields["auto_merge_ready_since"] = mr.auto_merge_ready_since or now
    else:
        fields["auto_merge_ready_since"] = None

    fields["consecutive_transient_failures"] = 0
    fields["consecutive_malformed_failures"] = 0

    if not terminal:
        obs.rework = (
            dropped[1]
            if dropped is not None and blocker == dropped[0]
            else _rework(mr, snapshot, blocker=blocker, settings=settings)
        )
        if obs.rework is not None and rework_handled(mr, obs.rework.cause):
            obs.rework = None
    obs.changed = any(
        getattr(mr, name) != value for name, value in fields.items() if name != "snapshot_at"
    )
    return obs


def rework_handled(mr: MergeRequest, cause: str) -> bool:
    return cause in (mr.rework_causes or [])


def _ended_how(blocker: str, snapshot: PullRequestSnapshot) -> str:
    """How a wait ended, in domain.md §6's words."""
    if blocker in _ENDED_BY:
        return _ENDED_BY[Blocker(blocker)]
    # Ready, behind (GitHub reports BEHIND only once nothing blocks) or approved: no human
    # is awaited any more.
    return "approved"


def _rework(
    mr: MergeRequest, snapshot: PullRequestSnapshot, *, blocker: str, settings: EffectiveSettings
) -> Rework | None:
    """The rework a blocker asks for, keyed by a cause that changes only with a new cause
    (domain.md §3): a new head SHA, a new review decision, a new number of threads."""
    sha = snapshot.head_sha
    name = mr.pr_name
    if blocker == Blocker.CONFLICT:
        return Rework(
            f"conflict:{sha}",
            f"{name} conflicts with {snapshot.base_ref or mr.target_branch}: merge or rebase "
            "and resolve the conflicts",
        )
    if blocker == Blocker.CHANGES_REQUESTED:
        return Rework(
            f"changes_requested:{sha}:{snapshot.review_decision}",
            f"a reviewer requested changes on {name}: address the review",
        )
    if blocker == Blocker.CHECKS_FAILING:
        names = ", ".join(sorted({c.name for c in snapshot.failing_checks})) or "a check"
        return Rework(f"checks_failing:{sha}", f"checks failing on {name}: {names}")
    if blocker == Blocker.THREADS:
        count = snapshot.blocking_threads
        return Rework(
            f"threads:{sha}:{count}",
            f"{count} unresolved review thread{'s' if count != 1 else ''} on {name}",
        )
    if blocker == Blocker.BEHIND:
        # update-branch adds a commit, which dismisses stale approvals where branch
        # protection says so: only use it on a PR that has no approval to lose.
        use_update = settings.allow_update_branch and snapshot.review_decision != "APPROVED"
        return Rework(
            f"behind:{sha}",
            f"{name} is behind {snapshot.base_ref or mr.target_branch}: update the branch",
            update_branch=use_update,
        )
    return None


def edge_events(mr: MergeRequest, obs: Observation, *, now: datetime) -> list[TelemetryEvent]:
    """The telemetry an observation's edges call for; `mr` already holds the new values."""
    events = []
    if obs.wait_ended:
        events.append(
            wait_ended_event(
                mr,
                how=obs.wait_ended_how,
                started_at=obs.wait_started_at,
                now=now,
                reviewers=obs.wait_reviewers,
            )
        )
    if obs.wait_began:
        events.append(wait_began_event(mr, now=now))
    return events
