"""Side effects recorded as intents (docs/architecture.md, "Side effects and crashes"):
recorded in the tick's transaction, finished after they ran, run again after a crash once
their lease passed, idempotent on repeat, given up after MAX_INTENT_ATTEMPTS.

A crash is reproduced here by applying a tick's actions without running its intents (the
process died right after commit), then claiming the intent as the dead process had (it died
inside the call) and doing on the fake GitHub what GitHub did. tests/test_side_effect_crashes.py
kills real processes."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from beads.models import Bead, BeadEvent, BeadStatus, MergeRequest, MergeRequestState
from gastown.models import Agent, AgentRole, Convoy, IntentKind, SideEffectIntent
from gastown.reconciler.apply import apply_actions
from gastown.reconciler.load import load_snapshot
from gastown.reconciler.rules import plan
from gastown.services.intents import (
    INTENT_LEASE,
    MAX_INTENT_ATTEMPTS,
    intent_claim,
    intents_due,
)
from gastown.services.reports import (
    ReportRefused,
    agent_fetch_assignment,
    refinery_report_review,
)
from tests.factories import ConvoyFactory, MergeRequestFactory, RigFactory

pytestmark = pytest.mark.django_db
REPO = "acme/app"


def decide_only(town, now):
    """A tick whose process dies right after its commit: the intents stay unrun."""
    with transaction.atomic():
        apply_actions(town, plan(load_snapshot(town, now)), now)


def landing_setup(fake_github):
    fake_github.create_repo(REPO)
    fake_github.create_branch(REPO, "polecat/fix")
    rig = RigFactory(repo=REPO)
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, branch="polecat/fix")
    return rig, mr


def pr_posts(fake_github):
    return [r for r in fake_github.requests if r.method == "POST" and r.path.endswith("/pulls")]


def test_each_side_effect_is_an_intent_finished_after_it_ran(tick, fake_github, runtime):
    rig, mr = landing_setup(fake_github)
    tick(rig.town)
    intents = {i.kind: i for i in SideEffectIntent.objects.all()}
    assert set(intents) == {IntentKind.OPEN_PR, IntentKind.DISPATCH}
    assert {i.outcome for i in intents.values()} == {"done"}
    assert all(i.attempts == 1 and i.finished_at for i in intents.values())
    assert intents[IntentKind.OPEN_PR].key == f"open_pr:mr:{mr.pk}:1"
    # The refinery hears of the MR with its PR, and with its dispatch's key.
    ((headers, body),) = runtime.received
    payload = json.loads(body)
    assert payload["dispatch_id"] == headers["X-Gastown-Dispatch-Id"]
    assert payload["dispatch_id"] == intents[IntentKind.DISPATCH].key
    assert payload["merge_request"]["pr_url"] == MergeRequest.objects.get(pk=mr.pk).pr_url


def test_a_pr_opened_by_a_process_that_died_is_adopted_after_the_lease(
    tick, clock, fake_github, runtime
):
    rig, mr = landing_setup(fake_github)
    decide_only(rig.town, clock.now)
    opening = SideEffectIntent.objects.get(kind=IntentKind.OPEN_PR)
    assert intent_claim(intent=opening, now=clock.now)
    fake_github.create_pr(REPO, head="polecat/fix", base="main")  # GitHub opened it
    # Within the lease the call may still be in flight: nothing repeats it, and the refinery
    # (hooked, its MR in progress) is not told of an MR without a PR.
    clock.advance(seconds=INTENT_LEASE.total_seconds() - 1)
    tick(rig.town)
    assert MergeRequest.objects.get(pk=mr.pk).pr_url == ""
    assert runtime.received == []
    assert pr_posts(fake_github) == []
    clock.advance(seconds=1)
    tick(rig.town)
    mr.refresh_from_db()
    assert mr.pr_url == fake_github.pr_url(REPO, 1)
    assert len(fake_github.state.repos[REPO].pulls) == 1
    assert pr_posts(fake_github) == []  # adopted from the list of open PRs, not re-posted
    opening.refresh_from_db()
    assert (opening.outcome, opening.attempts) == ("done", 2)
    # The refinery is told once, with the PR.
    assert len(runtime.received) == 1
    assert json.loads(runtime.received[0][1])["merge_request"]["pr_url"] == mr.pr_url


def test_a_dispatch_whose_process_died_is_sent_again_with_the_same_key(
    tick, clock, fake_github, runtime
):
    rig = RigFactory(repo=REPO)
    bead = Bead.objects.create(town=rig.town, rig=rig, title="Fix it", created_by="test")
    decide_only(rig.town, clock.now)
    dispatch = SideEffectIntent.objects.get(kind=IntentKind.DISPATCH)
    assert dispatch.bead_id == bead.pk
    assert intent_claim(intent=dispatch, now=clock.now)
    clock.advance(seconds=30)
    tick(rig.town)
    assert runtime.received == []  # in its lease: maybe still in flight
    clock.advance(seconds=INTENT_LEASE.total_seconds())
    tick(rig.town)
    ((headers, _),) = runtime.received
    assert headers["X-Gastown-Dispatch-Id"] == dispatch.key == f"dispatch:bead:{bead.pk}:1"
    dispatch.refresh_from_db()
    assert dispatch.outcome == "done"


def test_a_new_dispatch_supersedes_the_unfinished_one(tick, clock, fake_github, runtime):
    rig, _ = landing_setup(fake_github)
    decide_only(rig.town, clock.now)  # the process died before it told the refinery
    first = SideEffectIntent.objects.get(kind=IntentKind.DISPATCH)
    clock.advance(minutes=1)
    tick(rig.town)  # R6 re-dispatches the hooked refinery; the PR is opened first
    assert SideEffectIntent.objects.filter(kind=IntentKind.OPEN_PR).count() == 1
    first.refresh_from_db()
    assert first.outcome == "superseded"
    assert len(runtime.received) == 1
    assert json.loads(runtime.received[0][1])["dispatch_id"].endswith(":2")


def test_an_intent_that_dies_every_time_is_given_up_and_its_mr_requeued(
    tick, clock, fake_github, runtime
):
    rig, mr = landing_setup(fake_github)
    decide_only(rig.town, clock.now)
    opening = SideEffectIntent.objects.get(kind=IntentKind.OPEN_PR)
    for _ in range(MAX_INTENT_ATTEMPTS):
        assert opening in intents_due(town=rig.town, now=clock.now)
        assert intent_claim(intent=opening, now=clock.now)
        clock.advance(seconds=INTENT_LEASE.total_seconds())
    tick(rig.town)
    opening.refresh_from_db()
    assert opening.outcome == "abandoned"
    mr.refresh_from_db()
    assert mr.state == MergeRequestState.OPEN  # back in the queue: R5 tries again or fails it
    assert "no answer after 3 tries" in mr.last_error
    assert Agent.objects.get(role=AgentRole.REFINERY).hooked_bead_id is None
    assert pr_posts(fake_github) == []
    assert runtime.received == []


def test_two_workers_claim_an_intent_once(fake_github, clock):
    rig, _ = landing_setup(fake_github)
    decide_only(rig.town, clock.now)
    seen_by_one = intents_due(town=rig.town, now=clock.now)
    seen_by_two = intents_due(town=rig.town, now=clock.now)
    assert [intent_claim(intent=i, now=clock.now) for i in seen_by_one] == [True, True]
    assert [intent_claim(intent=i, now=clock.now) for i in seen_by_two] == [False, False]


def test_a_branch_created_by_a_process_that_died_counts_as_created(tick, clock, fake_github):
    fake_github.create_repo(REPO)
    convoy = ConvoyFactory(rig__repo=REPO)
    Bead.objects.create(
        town=convoy.town, rig=convoy.rig, convoy=convoy, title="Part", created_by="test"
    )
    decide_only(convoy.town, clock.now)
    creating = SideEffectIntent.objects.get(kind=IntentKind.CREATE_BRANCH)
    assert intent_claim(intent=creating, now=clock.now)
    convoy.refresh_from_db()
    fake_github.create_branch(REPO, convoy.feature_branch)  # GitHub created it
    clock.advance(seconds=30)
    tick(convoy.town)  # rule C asks again: the unfinished intent is the one that runs
    assert SideEffectIntent.objects.filter(kind=IntentKind.CREATE_BRANCH).count() == 1
    clock.advance(seconds=INTENT_LEASE.total_seconds())
    tick(convoy.town)
    convoy.refresh_from_db()
    assert convoy.feature_branch_created_at is not None
    posts = [r for r in fake_github.requests if r.method == "POST" and "/git/refs" in r.path]
    assert posts == []  # seen on GitHub first, not created again
    creating.refresh_from_db()
    assert creating.outcome == "done"


def test_a_review_of_an_mr_without_a_pr_is_refused(fake_github, clock):
    rig, mr = landing_setup(fake_github)
    decide_only(rig.town, clock.now)  # the refinery is hooked; the PR not opened yet
    refinery = Agent.objects.get(role=AgentRole.REFINERY)
    with pytest.raises(ReportRefused, match="has no pull request yet"):
        refinery_report_review(agent=refinery, merge_request=mr, passed=True)
    assert MergeRequest.objects.get(pk=mr.pk).review_status == "pending"
    # Nor does it find the MR to review when it asks for its work.
    assert agent_fetch_assignment(agent=refinery) is None
    assert not BeadEvent.objects.filter(bead=mr.bead, note__startswith="Review").exists()


def test_a_landing_mr_without_a_pr_and_without_an_agent_is_escalated(tick, clock):
    rig = RigFactory()
    convoy = ConvoyFactory(town=rig.town, rig=rig, status="landing")
    MergeRequestFactory(
        bead__town=rig.town,
        bead__rig=rig,
        bead__status=BeadStatus.IN_PROGRESS,
        landing_convoy=convoy,
        branch=convoy.feature_branch,
    )
    Bead.objects.update(updated_at=clock.now)
    Convoy.objects.update(updated_at=clock.now)
    clock.advance(minutes=11)
    tick(rig.town)
    escalation = Bead.objects.get(type="escalation")
    assert "in progress without a pull request" in escalation.body


def test_finished_intents_are_pruned_after_a_week_and_unfinished_ones_kept(
    tick, clock, fake_github, runtime
):
    from datetime import timedelta

    from gastown.reconciler.tick import prune

    rig, _ = landing_setup(fake_github)
    tick(rig.town)
    pending = SideEffectIntent.objects.create(
        town=rig.town,
        kind=IntentKind.OPEN_PR,
        target_id=0,
        key="open_pr:mr:0:1",
        created_at=clock.now,
    )
    prune(clock.now + timedelta(days=6))
    assert SideEffectIntent.objects.count() == 3
    prune(clock.now + timedelta(days=8))
    assert list(SideEffectIntent.objects.all()) == [pending]


def test_a_dispatch_whose_agent_was_heard_from_is_not_sent_again(tick, clock, fake_github, runtime):
    from gastown.services.reports import agent_heartbeat

    rig = RigFactory(repo=REPO)
    Bead.objects.create(town=rig.town, rig=rig, title="Fix it", created_by="test")
    decide_only(rig.town, clock.now)
    dispatch = SideEffectIntent.objects.get(kind=IntentKind.DISPATCH)
    assert intent_claim(intent=dispatch, now=clock.now)
    # The runtime got it before the process died: its agent reports in.
    agent_heartbeat(agent=Agent.objects.get(pk=dispatch.target_id), now=clock.now)
    clock.advance(seconds=INTENT_LEASE.total_seconds())
    tick(rig.town)
    assert runtime.received == []
    dispatch.refresh_from_db()
    assert dispatch.outcome == "heard_from"
