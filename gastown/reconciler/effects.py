"""Side effects of a tick, run after its transaction committed: GitHub calls and agent
notifications. A failure here is recorded on the object and retried by a later tick's rules;
it never undoes what the tick applied.

Each effect that must be neither lost nor doubled was recorded as an intent in the tick's
transaction (gastown.services.intents); `run_intents` runs the town's due intents, those of
this tick and those a killed process left unfinished, and every effect is idempotent on
repeat (docs/architecture.md, "Side effects and crashes")."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from beads.audit import Actor
from beads.merge_requests import (
    MergeRequestTransitionRefused,
    merge_request_transition,
    merge_request_write,
)
from beads.models import Bead, BeadEventKind, BeadType, MergeRequest, MergeRequestState, bead_ref
from beads.services import bead_event_record, escalation_raise
from gastown.logs import log_context
from gastown.models import Agent, AgentStatus, Convoy, IntentKind, SideEffectIntent, Town
from gastown.reconciler.apply import SideEffect
from gastown.services.convoys import convoy_feature_branch_created, convoy_feature_branch_failed
from gastown.services.dispatch import dispatch_failed, dispatch_notify
from gastown.services.github import github_client_for
from gastown.services.intents import (
    CHECK_CALLS,
    intent_claim,
    intent_defer,
    intent_exhausted,
    intent_finish,
    intents_due,
)
from gastown.services.notifications import notifications_send_due
from scm.errors import ScmError

log = logging.getLogger(__name__)

#: What an effect reports: it ran ("done"), GitHub or the runtime refused it ("failed", its
#: failure recorded on the object), nothing was left to do ("skipped"), or what it needs is
#: not there yet ("deferred": offered again next tick).
DONE, FAILED, SKIPPED, DEFERRED = "done", "failed", "skipped", "deferred"


def run_side_effects(town: Town, effects: list[SideEffect], now: datetime) -> None:
    for effect in effects:
        try:
            with log_context(bead=effect.bead_id):
                if effect.kind == "feedback_check":
                    from gastown.scheduling import enqueue_feedback_check

                    enqueue_feedback_check(town.pk)
        except Exception:  # one broken side effect must not stop the others
            with log_context(bead=effect.bead_id):
                log.exception("side effect %s for %s failed", effect.kind, effect.target_id)


def run_intents(town: Town, now: datetime) -> None:
    """Run the town's due intents in the order they were decided (a landing PR before the
    refinery's notification). One that raises stays started: it is offered again after its
    lease, and given up after MAX_INTENT_ATTEMPTS."""
    for intent in intents_due(town=town, now=now):
        if intent.kind in CHECK_CALLS:
            # A merge or enqueue whose process died: never repeated from here; the feedback
            # check reads the PR before any new call (gastown/feedback/merge.py).
            intent_finish(
                intent=intent,
                now=now,
                outcome="no_answer",
                error="the process stopped inside the call",
            )
            continue
        exhausted = intent_exhausted(intent)
        if not intent_claim(intent=intent, now=now):
            continue  # another worker runs it
        with log_context(bead=intent.bead_id):
            try:
                if exhausted:
                    _abandon(town, intent, now)
                    continue
                outcome = _run_intent(town, intent, now)
            except Exception as exc:
                log.exception("side effect %s failed", intent.key)
                SideEffectIntent.objects.filter(pk=intent.pk).update(last_error=repr(exc)[:2000])
                continue
            if outcome == DEFERRED:
                intent_defer(intent=intent)
            else:
                intent_finish(intent=intent, now=now, outcome=outcome)


def _run_intent(town: Town, intent: SideEffectIntent, now: datetime) -> str:
    if intent.kind == IntentKind.OPEN_PR:
        return open_pull_request(town=town, mr_id=intent.target_id, now=now)
    if intent.kind == IntentKind.CREATE_BRANCH:
        return create_feature_branch(town=town, convoy_id=intent.target_id, now=now)
    if intent.kind == IntentKind.DISPATCH:
        assert intent.bead_id is not None
        return _notify(intent, now=now)
    return SKIPPED


def _abandon(town: Town, intent: SideEffectIntent, now: datetime) -> None:
    """Every run of the intent died inside its call: give it up through the effect's own
    failure path, so the object it was for moves on (a retry, a failure, an escalation)."""
    message = f"no answer after {intent.attempts - 1} tries (the process stopped inside the call)"
    log.warning("side effect %s given up: %s", intent.key, message)
    if intent.kind == IntentKind.OPEN_PR:
        mr = MergeRequest.objects.select_related("bead").filter(pk=intent.target_id).first()
        if mr is not None and not mr.pr_url:
            _open_pr_failed(mr, ScmError("transient", message), now=now)
    elif intent.kind == IntentKind.CREATE_BRANCH:
        convoy = Convoy.objects.select_related("rig").filter(pk=intent.target_id).first()
        if convoy is not None and convoy.rig is not None and not convoy.feature_branch_created_at:
            _branch_failed(town, convoy, ScmError("transient", message), now=now)
    elif intent.kind == IntentKind.DISPATCH and intent.bead_id is not None:
        agent = Agent.objects.filter(pk=intent.target_id, hooked_bead_id=intent.bead_id).first()
        bead = Bead.objects.filter(pk=intent.bead_id).first()
        if agent is not None and bead is not None:
            dispatch_failed(agent=agent, bead=bead, reason=message, now=now)
    intent_finish(intent=intent, now=now, outcome="abandoned", error=message)


def _notify(intent: SideEffectIntent, *, now: datetime) -> str:
    """Tell the agent, with the intent's key: a runtime that got it before the process died
    knows the repeat (services.dispatch), and an agent heard from since the dispatch was
    decided evidently got it (no repeat at all). A refinery hooked to an MR without its PR
    waits for the PR: nothing to review yet."""
    assert intent.bead_id is not None
    agent = Agent.objects.filter(pk=intent.target_id, hooked_bead_id=intent.bead_id).first()
    if agent is None:
        return SKIPPED  # unhooked meanwhile (its PR could not be opened, a report, a rule)
    bead_type = Bead.objects.filter(pk=intent.bead_id).values_list("type", flat=True).first()
    if bead_type == BeadType.MERGE_REQUEST and not (
        MergeRequest.objects.filter(bead_id=intent.bead_id).exclude(pr_url="").exists()
    ):
        return DEFERRED
    repeat = intent.attempts > 1
    if repeat and agent.last_activity_at and agent.last_activity_at >= intent.created_at:
        return "heard_from"
    told = dispatch_notify(agent_id=agent.pk, bead_id=intent.bead_id, now=now, key=intent.key)
    return DONE if told else FAILED


def notify_escalations(town: Town, now: datetime) -> None:
    """Open escalations to people, once each: those this tick raised and those the feedback
    check raised since the last tick (gastown/services/notifications.py)."""
    try:
        notifications_send_due(town=town, now=now)
    except Exception:  # notifications never break a tick
        log.exception("notifying the escalations of town %s failed", town.pk)


def open_pull_request(*, town: Town, mr_id: int, now: datetime) -> str:
    """Open the MR's PR, or adopt the open one from its head to its base (scm looks first):
    a process that died after GitHub opened it finds it on the repeat."""
    mr = MergeRequest.objects.select_related("bead", "bead__rig").filter(pk=mr_id).first()
    if mr is None or mr.pr_url or mr.bead.rig is None or not mr.is_active:
        return SKIPPED
    rig = mr.bead.rig
    try:
        ref = github_client_for(town).open_pull_request(
            rig.repo,
            head=mr.branch,
            base=mr.target_branch,
            title=mr.bead.title,
            body=mr.bead.body or f"Opened by gastown for {bead_ref(mr.bead_id)}.",
        )
    except ScmError as exc:
        _open_pr_failed(mr, exc, now=now)
        return FAILED
    merge_request_write(
        merge_request=mr,
        where=Q(pr_url=""),
        now=now,
        pr_url=ref.url,
        last_error="",
        last_error_kind="",
        check_requested_at=now,
    )
    bead_event_record(
        bead=mr.bead,
        kind=BeadEventKind.NOTE,
        actor=Actor.reconciler(),
        note=f"opened {ref.url}",
        data={"pr_url": ref.url},
    )
    return DONE


def _open_pr_failed(mr: MergeRequest, exc: ScmError, *, now: datetime) -> None:
    with transaction.atomic():
        merge_request_write(
            merge_request=mr,
            new_version=False,  # what the check writes itself, not a snapshot it read
            last_error=f"{exc.kind}: {exc.message}",
            last_error_kind=exc.kind[:30],
        )
        bead_event_record(
            bead=mr.bead,
            kind=BeadEventKind.NOTE,
            actor=Actor.reconciler(),
            note=f"opening the PR failed: {exc.message}",
        )
        # Without a PR there is nothing to review: free the refinery for the queue.
        Agent.objects.filter(hooked_bead_id=mr.bead_id).update(
            hooked_bead=None, status=AgentStatus.IDLE
        )
        if mr.state == MergeRequestState.IN_PROGRESS:
            with contextlib.suppress(MergeRequestTransitionRefused):
                merge_request_transition(
                    merge_request=mr,
                    transition="requeue",
                    actor=Actor.reconciler(),
                    now=now,
                    note="retry opening the PR after the back-off",
                )


def create_feature_branch(*, town: Town, convoy_id: int, now: datetime) -> str:
    """Create the convoy's feature branch; one that exists already counts as created (scm
    reads GitHub's "Reference already exists"): a process that died after GitHub created it
    finds it on the repeat."""
    convoy = Convoy.objects.select_related("rig").filter(pk=convoy_id).first()
    if convoy is None or convoy.rig is None or convoy.feature_branch_created_at:
        return SKIPPED
    try:
        github_client_for(town).create_branch(
            convoy.rig.repo, branch=convoy.feature_branch, from_branch=convoy.rig.default_branch
        )
    except ScmError as exc:
        _branch_failed(town, convoy, exc, now=now)
        return FAILED
    convoy_feature_branch_created(convoy=convoy, now=now)
    return DONE


def _branch_failed(town: Town, convoy: Convoy, exc: ScmError, *, now: datetime) -> None:
    # Recorded with its time: rule C waits BRANCH_RETRY before it tries again, and a team
    # lead hears of it once (a missing repository or a token without write access will not
    # fix itself; the convoy's beads are not dispatched until the branch exists).
    assert convoy.rig is not None
    with transaction.atomic():
        convoy_feature_branch_failed(convoy=convoy, message=exc.message, now=now)
        if exc.kind != "transient":
            escalation_raise(
                town=town,
                key=f"convoy-branch:{convoy.pk}",
                title=f"Cannot create the feature branch of convoy {convoy.title}",
                body=f"Creating {convoy.feature_branch} from {convoy.rig.default_branch} in "
                f"{convoy.rig.repo} failed: {exc.message} It is retried every minute; "
                "the convoy's beads wait for the branch.",
                rig=convoy.rig,
                convoy=convoy,
            )
