"""Auto-merge (domain.md §5): merge a PR that has been ready for the delay, after one fresh look.

Fail closed at every step: a PR waiting on a human is never merged whatever the timer says;
the attempt is claimed with a conditional update that also restarts the timer, so two
workers never both merge; every merge call is a MergeAttempt row, and a refusal about the
head stands (MergeRequest.merge_refusal), so the
same head in the same state is asked again only once REFUSAL_HOLD has passed (domain.md §1: no
merge call per poll, and no PR parked for good on what GitHub's GraphQL cannot show); the PR
is checked again right before the call and the call sends the head SHA that check saw; a
409 or a 5xx is never retried blindly (the next pass looks at the PR first: it may have
merged, or its head moved), and after a 5xx or a time-out the next call waits for a back-off
that grows with each such answer (observe.refusal_hold), so a call that may still be in
flight is never sent twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F

from beads.models import (
    ACTIVE_MR_STATES,
    FINAL_REFUSALS,
    LAST_ERROR_MERGE_REFUSED,
    LAST_ERROR_PRE_MERGE_CHECK,
    Blocker,
    MergeAttempt,
    MergeRefusalKind,
    MergeRequest,
    ReviewStatus,
)
from beads.services import escalation_raise
from gastown.feedback.observe import (
    backing_off,
    blocker_detail,
    edge_events,
    held_by_refusal,
    hold_labels,
    observe,
    refusal_expired,
    refusal_head,
    refusal_kind,
    refusal_state,
    standing_refusal,
)
from gastown.logs import mr_log_context
from gastown.models import Convoy, EffectiveSettings, IntentKind, SideEffectIntent, TelemetryEvent
from gastown.models.convoys import TERMINAL_CONVOY_STATUSES
from gastown.services.intents import (
    CHECK_CALLS,
    INTENT_LEASE,
    intent_begin,
    intent_finish,
    intents_unanswered,
)
from gastown.services.merge_requests import (
    mr_close_merged,
    telemetry_event,
    wait_began_event,
    wait_ended_event,
)
from scm import blocker as scm_blocker
from scm.client import GitHubClient
from scm.errors import CredentialError, ScmError
from scm.types import (
    LabelEvent,
    MergeOutcome,
    PullRequestRef,
    PullRequestSnapshot,
    QueueRemoval,
    Refusal,
)

if TYPE_CHECKING:
    from gastown.feedback.checks import CheckSummary

log = logging.getLogger(__name__)


def merge_due(mr: MergeRequest, *, settings: EffectiveSettings, now: datetime) -> bool:
    """Whether the MR may be merged now, from what is stored (the fresh check comes after)."""
    if mr.bead.is_terminal or not mr.is_active:
        return False  # a failed landing MR is adopted by a new one, never merged here
    requested = mr.merge_requested_at is not None
    if not (settings.auto_merge or requested):
        return False
    if settings.code_review and mr.review_status != ReviewStatus.PASSED:
        return False
    if held_by_refusal(mr):
        # Parked by a refusal whose head and state did not visibly change: ask GitHub
        # again once the hold is over (the fresh check still has to show no blocker).
        return refusal_expired(mr, now=now)
    if mr.blocker != Blocker.READY:
        return False
    if backing_off(mr, now=now):
        return False  # the last call got no answer: it may be in flight (merge now too)
    if requested:
        return True  # a team lead asked: try again even after a refusal
    if refusal_kind(mr) in FINAL_REFUSALS and refusal_head(mr) == mr.head_sha:
        return False  # refused for good: a new push (or base, or merge now) may change that
    ready_since = mr.auto_merge_ready_since
    return ready_since is not None and now - ready_since >= settings.auto_merge_delay


def merge_ready(
    candidates: list[MergeRequest],
    *,
    client: GitHubClient,
    now: datetime,
    settings_for: Callable[[MergeRequest], EffectiveSettings],
    summary: CheckSummary,
) -> None:
    """Merge the candidates (MRs just observed) whose time has come."""
    for mr in candidates:
        settings = settings_for(mr)
        if merge_due(mr, settings=settings, now=now):
            with mr_log_context(mr):
                merge_attempt(mr, client=client, settings=settings, now=now, summary=summary)


_FINAL_REFUSAL_HELP = {
    "": "{url} looks ready, but GitHub refused the merge ({outcome.kind}, method "
    "{outcome.method}): {outcome.message}\n\nAuto-merge will not retry this head. Fix the "
    "repository's merge settings (or the town's merge methods) and press merge now, or merge "
    "on GitHub.",
    "wrong_base": "{url} is not merged: {outcome.message}.\n\nChange the PR's base on "
    "GitHub, or fail the MR and report the right PR.",
}


#: How far ahead a claimed attempt moves the auto-merge timer while its fresh check and merge
#: call are in flight: the intent lease, longer than both calls' time-outs. A process killed
#: before its merge call leaves the timer there, so the attempt is claimed again one lease
#: later (the merge call itself is guarded by its intent); one that fails by an exception
#: gives the timer back at once (merge_attempt).
IN_FLIGHT = INTENT_LEASE


def _claim(mr: MergeRequest, *, now: datetime) -> bool:
    """One attempt per ready window: the timer and the merge-now request are consumed here,
    conditionally on what was read, so a second worker finds nothing to claim. The timer is
    not cleared but moved ahead while the attempt is in flight: a check pass reading the MR
    meanwhile keeps it (a ready PR's timer is never reset) and so finds nothing due, instead
    of starting a new timer and claiming a second merge call."""
    in_flight = now + IN_FLIGHT
    claimed = MergeRequest.objects.filter(
        pk=mr.pk,
        state__in=ACTIVE_MR_STATES,
        blocker=Blocker.READY,
        auto_merge_ready_since=mr.auto_merge_ready_since,
        merge_requested_at=mr.merge_requested_at,
    ).update(
        auto_merge_ready_since=in_flight,
        merge_requested_at=None,
        updated_at=now,
        version=F("version") + 1,
    )
    if claimed != 1:
        return False
    mr.auto_merge_ready_since, mr.merge_requested_at = in_flight, None
    mr.version += 1
    return True


def _claim_retry(mr: MergeRequest, *, now: datetime) -> bool:
    """A held MR's new attempt is claimed on its refusal as read, and restarts the hold: a
    second worker finds nothing to claim, and a failed fresh check waits for the next hold."""
    claimed = MergeRequest.objects.filter(
        pk=mr.pk,
        state__in=ACTIVE_MR_STATES,
        blocker=mr.blocker,
        merge_refusal_id=mr.merge_refusal_id,
        merge_refusal_waits_on=mr.merge_refusal_waits_on,
        merge_hold_from=mr.merge_hold_from,
    ).update(
        merge_hold_from=now,
        auto_merge_ready_since=now + IN_FLIGHT,  # in flight, as in _claim
        merge_requested_at=None,
        updated_at=now,
        version=F("version") + 1,
    )
    if claimed != 1:
        return False
    mr.version += 1
    mr.merge_hold_from, mr.auto_merge_ready_since = now, now + IN_FLIGHT
    mr.merge_requested_at = None
    return True


def _save(mr: MergeRequest, fields: dict[str, Any], *, now: datetime) -> None:
    for name, value in fields.items():
        setattr(mr, name, value)
    MergeRequest.objects.filter(pk=mr.pk).update(**fields, updated_at=now, version=F("version") + 1)
    mr.version += 1


def merge_attempt(
    mr: MergeRequest,
    *,
    client: GitHubClient,
    settings: EffectiveSettings,
    now: datetime,
    summary: CheckSummary,
) -> None:
    if intents_unanswered(kinds=CHECK_CALLS, target_id=mr.pk, now=now):
        # A merge or enqueue sent by a process that died (or still waits for its answer)
        # within the lease: it may be merging now. After the lease the fresh check below
        # reads the PR before any new call (docs/architecture.md, "Side effects and crashes").
        log.info("no merge of %s: an earlier call may still be in flight", mr.pr_name)
        return
    retry = held_by_refusal(mr)
    if not (_claim_retry(mr, now=now) if retry else _claim(mr, now=now)):
        return
    try:
        _attempt_claimed(
            mr, client=client, settings=settings, now=now, summary=summary, retry=retry
        )
    except Exception:
        # A CredentialError (the town pauses) or a surprise: no merge call is in flight (the
        # intents guard one that may be), so the timer the claim moved ahead is given back and
        # the first ready observation after the pause tries again, not a lease later.
        _save(mr, {"auto_merge_ready_since": None}, now=now)
        raise


def _attempt_claimed(
    mr: MergeRequest,
    *,
    client: GitHubClient,
    settings: EffectiveSettings,
    now: datetime,
    summary: CheckSummary,
    retry: bool,
) -> None:
    ref = mr.pr_ref
    if ref is None:  # the check that made it ready parsed it: changed meanwhile
        return
    # The fresh check. A CredentialError goes up: the town pauses, nothing is merged.
    result = client.fetch_snapshots([ref]).get(ref)
    if result is None or result.snapshot is None:
        error = result.error if result is not None else None
        message = error.message if error is not None else "no answer"
        log.info("no merge of %s: the pre-merge check failed (%s)", mr.pr_name, message)
        # Fail closed; the timer restarts at the next ready observation.
        fields = {
            "last_error": f"pre-merge check failed: {message}"[:2000],
            "last_error_kind": LAST_ERROR_PRE_MERGE_CHECK,
        }
        _save(mr, {**fields, "auto_merge_ready_since": None}, now=now)
        return
    snapshot = result.snapshot
    obs = observe(mr, snapshot, settings=settings, now=now, retry=retry)
    with transaction.atomic():
        _save(mr, {**obs.fields, "last_successful_check_at": now}, now=now)
        TelemetryEvent.objects.bulk_create(edge_events(mr, obs, now=now))
    if obs.blocker != Blocker.READY:
        log.info("no merge of %s: the pre-merge check says %s", mr.pr_name, obs.blocker)
        if obs.blocker == Blocker.MERGED and mr_close_merged(
            mr, now=now, merge_commit_sha=obs.merge_commit_sha
        ):
            summary.closed += 1
        # Anything else (rework, a closed PR) is the next pass's business.
        return

    if snapshot.base_ref and snapshot.base_ref != mr.target_branch:
        # The PR would land somewhere its MR does not (a review-then-land bead's PR aimed at
        # the default branch would skip the convoy's landing): refused here, never sent.
        message = (
            f"the PR's base is {snapshot.base_ref}, but the merge request targets "
            f"{mr.target_branch}"
        )
        summary.merge_refused += 1
        _refused(mr, MergeOutcome("wrong_base", None, message), snapshot=snapshot, now=now)
        return

    summary.merge_attempts += 1
    if snapshot.merge_queue_required:
        # The base takes changes only through its merge queue: enqueue, never merge.
        _enqueue(mr, client=client, snapshot=snapshot, now=now, summary=summary)
        return
    intent = _intend(mr, IntentKind.MERGE, now=now)
    with _answered_if_refused(intent, now=now):
        outcome = client.merge(ref, head_sha=snapshot.head_sha, methods=settings.merge_methods)
    intent_finish(intent=intent, now=now, outcome=outcome.kind)
    if outcome.refusal == Refusal.MERGE_QUEUE_REQUIRED:
        # A queue GraphQL did not show (a ruleset's): GitHub wants the PR enqueued.
        _enqueue(mr, client=client, snapshot=snapshot, now=now, summary=summary)
        return
    if outcome.merged:
        _merged(mr, outcome, head_sha=snapshot.head_sha, now=now)
        summary.merged += 1
        summary.closed += 1
        if settings.delete_head_branch:
            head_branch_delete(mr, client=client, snapshot=snapshot)
        return
    summary.merge_refused += 1
    _refused(mr, outcome, snapshot=snapshot, now=now)


def _intend(mr: MergeRequest, kind: str, *, now: datetime) -> SideEffectIntent:
    """The call about to be sent, recorded first: a process killed before the answer leaves
    it unfinished, and no pass calls again until its lease passed and the PR was read."""
    return intent_begin(
        town_id=mr.bead.town_id, kind=kind, target_id=mr.pk, subject=f"mr:{mr.pk}", now=now
    )


@contextmanager
def _answered_if_refused(intent: SideEffectIntent, *, now: datetime) -> Iterator[None]:
    """GitHub refusing the token (a rate limit, a revoked token) answered the call: nothing
    was done and nothing is in flight, so the intent is finished and does not hold the next
    call for its lease."""
    try:
        yield
    except CredentialError as error:
        intent_finish(intent=intent, now=now, outcome=f"token: {error.kind}", error=error.message)
        raise


def _merged(mr: MergeRequest, outcome: MergeOutcome, *, head_sha: str, now: datetime) -> None:
    waiting_since = mr.waiting_since  # kept by a retry of a review refusal: GitHub said yes
    with transaction.atomic():
        _save(
            mr,
            {
                "pr_state": "MERGED",
                "blocker": Blocker.MERGED,
                "waiting_since": None,
                "auto_merge_ready_since": None,
                "last_error": "",
                "last_error_kind": "",
            },
            now=now,
        )
        if waiting_since is not None:
            wait_ended_event(mr, how="approved", started_at=waiting_since, now=now).save()
        MergeAttempt.objects.create(
            merge_request=mr,
            created_at=now,
            head_sha=head_sha[:64],
            method=(outcome.method or "")[:20],
            outcome=outcome.kind[:30],
            message=outcome.message,
            merge_commit_sha=(outcome.sha or "")[:64],
        )
        mr_close_merged(
            mr,
            now=now,
            merge_commit_sha=outcome.sha or "",
            note=f"{mr.pr_name} merged by auto-merge ({outcome.method}).",
        )
        telemetry_event(
            mr,
            "pr.merged",
            label=outcome.method or "",
            data={"pr_url": mr.pr_url, "head_sha": head_sha, "merge_commit_sha": outcome.sha},
        ).save()


def _refusal_kind(outcome: MergeOutcome) -> str:
    """What a refusal is remembered as, read from scm's Refusal (scm.blocker's table): the
    blocker it holds the MR at, a final kind, or no answer (a 5xx or a time-out: a back-off);
    empty for an answer that says nothing about this head (head moved, the merge queue:
    enqueued instead)."""
    if outcome.kind == MergeRefusalKind.WRONG_BASE:
        return MergeRefusalKind.WRONG_BASE  # never sent: ours, not GitHub's
    if outcome.kind == "transient":
        # A 5xx or a time-out: the call may have merged. Back off (refusal_hold); the PR is
        # read before any new call.
        return MergeRefusalKind.NO_ANSWER
    refusal = outcome.refusal
    if refusal is None:
        return ""
    if refusal in scm_blocker.FINAL_REFUSALS or refusal == Refusal.DRAFT:
        if refusal in {Refusal.METHOD_NOT_ALLOWED, Refusal.NOT_MERGEABLE}:
            return str(refusal)
        return MergeRefusalKind.NOT_MERGEABLE if refusal == Refusal.DRAFT else "permanent"
    held = scm_blocker.refusal_blocker(refusal)
    if held in {scm_blocker.Blocker.CHECKS_PENDING, scm_blocker.Blocker.CHECKS_FAILING}:
        return str(held)
    if held in {
        scm_blocker.Blocker.HUMAN_REVIEW,
        scm_blocker.Blocker.CHANGES_REQUESTED,
        scm_blocker.Blocker.THREADS,
    }:
        # A person must review, or resolve what they asked, on a PR GraphQL showed ready:
        # held as a wait on a human until the review state or the head moves (no loop).
        return Blocker.HUMAN_REVIEW
    return ""


def _refused(
    mr: MergeRequest, outcome: MergeOutcome, *, snapshot: PullRequestSnapshot, now: datetime
) -> None:
    """The timer restarts from the next ready observation (it was consumed by the claim).

    Every call is a MergeAttempt row; a refusal about this head stands with what it depends
    on (merge_refusal, merge_refusal_waits_on), so
    the next checks keep the MR where GitHub's answer put it and make no new attempt until
    the head or that state changes: one merge call per head and state, not one per poll."""
    head_sha = snapshot.head_sha
    fields: dict[str, Any] = {
        "auto_merge_ready_since": None,
        "last_error": f"merge refused ({outcome.kind}): {outcome.message}"[:2000],
        "last_error_kind": LAST_ERROR_MERGE_REFUSED,
    }
    kind = _refusal_kind(outcome)
    if kind == MergeRefusalKind.NO_ANSWER and held_by_refusal(mr):
        # A retry of a held refusal got no answer: that refusal stands, with the hold its
        # claim restarted (a back-off of its own), and the wait it began goes on.
        kind = ""
    state = refusal_state(kind, snapshot) if kind else ""
    previous = standing_refusal(mr)
    repeated = (
        bool(kind)
        and previous is not None
        and (
            previous.head_sha,
            previous.refusal_kind,
            mr.merge_refusal_waits_on,
        )
        == (head_sha[:64], kind, state)
    )
    attempt = MergeAttempt(
        merge_request=mr,
        created_at=now,
        head_sha=head_sha[:64],
        method=(outcome.method or "")[:20],
        outcome=outcome.kind[:30],
        message=outcome.message,
        refusal_kind=kind,
        refusal_waits_on=state,
        # The same answer again doubles the hold (refusal_hold).
        repeats=previous.repeats + 1 if repeated and previous is not None else 1,
    )
    # Telemetry at the edges (domain.md §6): the same refusal of the same head and state again is
    # no news, so a PR that keeps waiting adds no refusal per hold to the charts.
    events = (
        []
        if repeated
        else [
            telemetry_event(
                mr,
                "pr.merge_refused",
                label=outcome.method or "",
                reason=outcome.message,
                data={"pr_url": mr.pr_url, "head_sha": head_sha, "outcome": outcome.kind},
            )
        ]
    )
    if kind == Blocker.HUMAN_REVIEW:
        # GitHub's merge endpoint knows rules its GraphQL merge state may not show (rulesets,
        # approval of the latest push): park the MR as waiting on a human until the head
        # or the review state changes, or REFUSAL_HOLD passes (observe() keeps it parked
        # meanwhile). A retry's refusal goes on with the same wait.
        fields.update(
            blocker=Blocker.HUMAN_REVIEW,
            waiting_since=mr.waiting_since or now,
        )
        if mr.waiting_since is None:
            mr.waiting_since = now
            mr.blocker = Blocker.HUMAN_REVIEW
            events.append(wait_began_event(mr, now=now))
    elif kind in {Blocker.CHECKS_PENDING, Blocker.CHECKS_FAILING}:
        fields["blocker"] = kind  # waiting on checks (domain.md §5), held there by observe()
    elif outcome.kind in {"head_moved", "transient"}:
        # Look again before anything else: the head moved, or a 5xx may hide a merge.
        fields["check_requested_at"] = now
    log.info("merge of %s refused: %s (%s)", mr.pr_name, outcome.kind, outcome.message)
    with transaction.atomic():
        attempt.save()
        if kind:
            fields.update(
                merge_refusal_id=attempt.pk, merge_refusal_waits_on=state, merge_hold_from=now
            )
        _save(mr, fields, now=now)
        if kind:
            mr.merge_refusal = attempt
        TelemetryEvent.objects.bulk_create(events)
        if kind in FINAL_REFUSALS:
            escalation_raise(
                town=mr.bead.town,
                rig=mr.bead.rig,
                key=f"merge_refused:mr:{mr.pk}:{head_sha}",
                title=(
                    f"Not merging {mr.pr_name}: {outcome.message}"
                    if kind == MergeRefusalKind.WRONG_BASE
                    else f"GitHub refuses to merge {mr.pr_name}: {outcome.message}"
                )[:300],
                body=_FINAL_REFUSAL_HELP.get(kind, _FINAL_REFUSAL_HELP[""]).format(
                    url=mr.pr_url, outcome=outcome
                ),
                data={"merge_request_id": mr.pk, "pr_url": mr.pr_url},
            )


def _enqueue(
    mr: MergeRequest,
    *,
    client: GitHubClient,
    snapshot: PullRequestSnapshot,
    now: datetime,
    summary: CheckSummary,
) -> None:
    """Add a ready PR to its base's merge queue with the head SHA the fresh check saw; GitHub
    merges it from there (or drops it: observe.queue_drop). Every call is a MergeAttempt row
    (method "queue"); a refusal is final for this head, like a refused merge."""
    ref = PullRequestRef(snapshot.repo, snapshot.number)
    intent = _intend(mr, IntentKind.ENQUEUE, now=now)
    with _answered_if_refused(intent, now=now):
        write = client.enqueue(ref, expected_head_sha=snapshot.head_sha, node_id=snapshot.node_id)
    intent_finish(intent=intent, now=now, outcome=write.kind)
    if write.kind in {"head_moved", "transient"}:
        # Look again first: the head moved, or a 5xx may hide an enqueue that happened.
        summary.merge_refused += 1
        outcome = MergeOutcome(write.kind, "queue", write.message)
        _refused(mr, outcome, snapshot=snapshot, now=now)
        return
    if not write.done:
        summary.merge_refused += 1
        outcome = MergeOutcome.refused(Refusal.UNKNOWN, "queue", write.message)
        _refused(mr, outcome, snapshot=snapshot, now=now)
        return
    entry = write.queue_entry
    with transaction.atomic():
        MergeAttempt.objects.create(
            merge_request=mr,
            created_at=now,
            head_sha=snapshot.head_sha[:64],
            method="queue",
            outcome="enqueued",
            message=write.message,
        )
        _save(
            mr,
            {
                "blocker": Blocker.QUEUED,
                "blocker_detail": (
                    f"in the merge queue of {snapshot.base_ref} "
                    f"({entry.state.lower().replace('_', ' ')})"
                    if entry is not None
                    else f"in the merge queue of {snapshot.base_ref}"
                )[:200],
                "queue_position": entry.position if entry is not None and entry.position else None,
                "auto_merge_ready_since": None,
                "last_error": "",
                "last_error_kind": "",
            },
            now=now,
        )
    log.info("%s enqueued in the merge queue of %s", mr.pr_name, snapshot.base_ref)


def queue_removals(
    observed: list[tuple[MergeRequest, PullRequestSnapshot]], *, client: GitHubClient
) -> dict[int, QueueRemoval]:
    """Why the merge queue dropped the PRs that were queued at the last check and are now
    open outside it, by MR id (one timeline look-up for all of them; none for the rest)."""
    left = {
        mr.pk: snapshot.ref
        for mr, snapshot in observed
        if mr.blocker == Blocker.QUEUED
        and snapshot.queue_entry is None
        and snapshot.state == "OPEN"
    }
    if not left:
        return {}
    found = client.queue_removals(list(left.values()))
    return {pk: removal for pk, ref in left.items() if (removal := found.get(ref)) is not None}


def hold_label_events(
    observed: list[tuple[MergeRequest, PullRequestSnapshot]],
    *,
    client: GitHubClient,
    settings_for: Callable[[MergeRequest], EffectiveSettings],
) -> dict[int, LabelEvent]:
    """Who added the hold label, by MR id, for the PRs that carry it and were not held at
    the last check (one timeline look-up per label, only at that edge)."""
    wanted: dict[str, dict[int, PullRequestRef]] = {}
    for mr, snapshot in observed:
        labels = hold_labels(settings_for(mr))
        carried = scm_blocker.held_by(snapshot, labels) if labels else None
        if carried is not None and mr.blocker != Blocker.HELD_BY_LABEL:
            wanted.setdefault(carried, {})[mr.pk] = snapshot.ref
    found: dict[int, LabelEvent] = {}
    for label, refs in wanted.items():
        events = client.label_events(list(refs.values()), label)
        for pk, ref in refs.items():
            if (event := events.get(ref)) is not None:
                found[pk] = event
    return found


#: Blockers under which a PR waits for GitHub's rules (checks, reviews): GitHub's native
#: auto-merge can be enabled then (GitHub refuses it on a PR it could merge right now).
NATIVE_AUTO_MERGE_WAITS = frozenset({Blocker.CHECKS_PENDING, Blocker.HUMAN_REVIEW})


def native_auto_merge(
    observed: list[tuple[MergeRequest, PullRequestSnapshot]],
    *,
    client: GitHubClient,
    now: datetime,
    settings_for: Callable[[MergeRequest], EffectiveSettings],
) -> None:
    """With the town's use_native_auto_merge, enable GitHub's auto-merge on a PR that waits
    on checks or a review and that gastown would merge once ready (domain.md §5): GitHub then
    merges it (or enqueues it) itself, and gastown does not. Asked once per head: a refusal
    (the repository does not allow auto-merge) leaves the merge to gastown, as without it."""
    for mr, snapshot in observed:
        settings = settings_for(mr)
        if not (settings.use_native_auto_merge and settings.auto_merge):
            continue
        if mr.bead.is_terminal or not mr.is_active or mr.blocker not in NATIVE_AUTO_MERGE_WAITS:
            continue
        if settings.code_review and mr.review_status != ReviewStatus.PASSED:
            continue
        if snapshot.auto_merge is not None or snapshot.queue_entry is not None:
            continue
        if snapshot.base_ref != mr.target_branch or not settings.merge_methods:
            continue
        if settings.require_label and not scm_blocker.held_by(snapshot, (settings.require_label,)):
            continue
        head = snapshot.head_sha[:64]
        asked = MergeAttempt.objects.filter(merge_request=mr, method="auto_merge", head_sha=head)
        if asked.exists():
            continue
        with mr_log_context(mr):
            write = client.enable_auto_merge(
                snapshot.ref,
                method=settings.merge_methods[0],
                expected_head_sha=snapshot.head_sha,
                node_id=snapshot.node_id,
            )
            with transaction.atomic():
                MergeAttempt.objects.create(
                    merge_request=mr,
                    created_at=now,
                    head_sha=head,
                    method="auto_merge",
                    outcome=f"auto_merge_{write.kind}"[:30],
                    message=write.message,
                )
                if write.done:
                    shown = dataclasses.replace(snapshot, auto_merge=write.auto_merge)
                    _save(mr, {"blocker_detail": blocker_detail(shown, mr.blocker)}, now=now)
            log.info("GitHub auto-merge on %s: %s (%s)", mr.pr_name, write.kind, write.message)


def head_branch_delete(
    mr: MergeRequest, *, client: GitHubClient, snapshot: PullRequestSnapshot
) -> bool:
    """After gastown merged the MR's PR, on a rig with delete_head_branch: delete its head
    branch (domain.md §5). Never the default branch (scm refuses it), never a branch that is
    not the MR's own (a fork's head of the same name), never a convoy's feature branch while
    the convoy is not terminal. The merge stands whatever happens here: a failure is logged."""
    branch = snapshot.head_ref
    if not branch or branch != mr.branch:
        return False
    in_use = (
        Convoy.objects.filter(feature_branch=branch, rig=mr.bead.rig)
        .exclude(status__in=TERMINAL_CONVOY_STATUSES)
        .exists()
    )
    if in_use:
        log.info("not deleting %s after %s merged: a convoy still uses it", branch, mr.pr_name)
        return False
    try:
        deleted = client.delete_branch(snapshot.repo, branch)
    except ScmError as error:  # a credential error too: the merge is done, nothing to pause
        log.warning("head branch %s of %s not deleted: %s", branch, mr.pr_name, error.message)
        return False
    log.info("deleted head branch %s of %s after its merge", branch, mr.pr_name)
    return deleted


def held_in_queue_dequeue(
    observed: list[tuple[MergeRequest, PullRequestSnapshot]],
    *,
    client: GitHubClient,
    settings_for: Callable[[MergeRequest], EffectiveSettings],
) -> int:
    """Take out of the merge queue the PRs that carry the hold label (added after they were
    enqueued): a hold keeps a PR from being merged, and GitHub's queue would merge it. The
    next check sees it held_by_label; removing the label lets it be enqueued again."""
    taken = 0
    for mr, snapshot in observed:
        labels = hold_labels(settings_for(mr))
        if snapshot.queue_entry is None or not labels or mr.bead.is_terminal:
            continue
        if scm_blocker.held_by(snapshot, labels) is None:
            continue
        with mr_log_context(mr):
            write = client.dequeue(snapshot.ref, node_id=snapshot.node_id)
            log.info("%s held by its label: dequeued (%s)", mr.pr_name, write.kind)
        if write.done:
            taken += 1
    return taken
