"""Side effects of a tick, run after its transaction committed: GitHub calls and agent
notifications. A failure here is recorded on the object and retried by a later tick's rules;
it never undoes what the tick applied."""

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
from beads.models import BeadEventKind, MergeRequest, MergeRequestState, bead_ref
from beads.services import bead_event_record, escalation_raise
from gastown.logs import log_context
from gastown.models import Agent, AgentStatus, Convoy, Town
from gastown.reconciler.apply import SideEffect
from gastown.services.convoys import convoy_feature_branch_created, convoy_feature_branch_failed
from gastown.services.dispatch import dispatch_notify
from gastown.services.github import github_client_for
from gastown.services.notifications import notifications_send_due
from scm.errors import ScmError

log = logging.getLogger(__name__)


def run_side_effects(town: Town, effects: list[SideEffect], now: datetime) -> None:
    for effect in effects:
        try:
            with log_context(bead=effect.bead_id):
                _run_side_effect(town, effect, now)
        except Exception:  # one broken side effect must not stop the others
            with log_context(bead=effect.bead_id):
                log.exception("side effect %s for %s failed", effect.kind, effect.target_id)


def _run_side_effect(town: Town, effect: SideEffect, now: datetime) -> None:
    if effect.kind == "notify_dispatch":
        assert effect.bead_id is not None
        dispatch_notify(agent_id=effect.target_id, bead_id=effect.bead_id, now=now)
    elif effect.kind == "open_pr":
        open_pull_request(town=town, mr_id=effect.target_id, now=now)
    elif effect.kind == "create_branch":
        create_feature_branch(town=town, convoy_id=effect.target_id, now=now)
    elif effect.kind == "feedback_check":
        from gastown.scheduling import enqueue_feedback_check

        enqueue_feedback_check(town.pk)


def notify_escalations(town: Town, now: datetime) -> None:
    """Open escalations to people, once each: those this tick raised and those the feedback
    check raised since the last tick (gastown/services/notifications.py)."""
    try:
        notifications_send_due(town=town, now=now)
    except Exception:  # notifications never break a tick
        log.exception("notifying the escalations of town %s failed", town.pk)


def open_pull_request(*, town: Town, mr_id: int, now: datetime) -> None:
    mr = MergeRequest.objects.select_related("bead", "bead__rig").filter(pk=mr_id).first()
    if mr is None or mr.pr_url or mr.bead.rig is None:
        return
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
        return
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


def create_feature_branch(*, town: Town, convoy_id: int, now: datetime) -> None:
    convoy = Convoy.objects.select_related("rig").filter(pk=convoy_id).first()
    if convoy is None or convoy.rig is None or convoy.feature_branch_created_at:
        return
    try:
        github_client_for(town).create_branch(
            convoy.rig.repo, branch=convoy.feature_branch, from_branch=convoy.rig.default_branch
        )
    except ScmError as exc:
        # Recorded with its time: rule C waits BRANCH_RETRY before it tries again, and a team
        # lead hears of it once (a missing repository or a token without write access will not
        # fix itself; the convoy's beads are not dispatched until the branch exists).
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
        return
    convoy_feature_branch_created(convoy=convoy, now=now)
