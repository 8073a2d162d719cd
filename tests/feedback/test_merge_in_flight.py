"""A merge or enqueue call whose process died is an unfinished intent (docs/architecture.md,
"Side effects and crashes"): no pass calls again within its lease, and after it the PR is
read before any new call. tests/test_side_effect_crashes.py kills real processes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gastown.models import IntentKind, SideEffectIntent
from gastown.services.intents import INTENT_LEASE, intent_begin
from tests.feedback.conftest import REPO, make_mr, reload, run

pytestmark = pytest.mark.django_db


def died_inside(mr, kind, clock):
    """What a process killed inside its merge (or enqueue) call leaves behind."""
    return intent_begin(
        town_id=mr.bead.town_id, kind=kind, target_id=mr.pk, subject=f"mr:{mr.pk}", now=clock.now
    )


def test_no_merge_is_sent_while_an_earlier_one_may_be_in_flight(fake_github, repo, rig, clock):
    mr = make_mr(fake_github, rig)
    lost = died_inside(mr, IntentKind.MERGE, clock)
    clock.advance(seconds=30)
    run(clock)
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    assert reload(mr).state == "open"
    clock.advance(seconds=INTENT_LEASE.total_seconds())
    run(clock)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    assert reload(mr).state == "merged"
    lost.refresh_from_db()
    assert lost.outcome == "no_answer"
    done = SideEffectIntent.objects.exclude(pk=lost.pk).get(kind=IntentKind.MERGE)
    assert (done.key, done.outcome) == (f"merge:mr:{mr.pk}:2", "merged")


def test_no_enqueue_is_sent_while_an_earlier_one_may_be_in_flight(fake_github, rig, clock):
    fake_github.create_repo(REPO, require_merge_queue=True)
    mr = make_mr(fake_github, rig)
    died_inside(mr, IntentKind.ENQUEUE, clock)
    clock.advance(seconds=30)
    run(clock)
    assert fake_github.merge_queue(REPO) == []
    clock.advance(seconds=INTENT_LEASE.total_seconds())
    run(clock)
    assert fake_github.merge_queue(REPO) == [mr.pr_number]
    enqueues = [r for r in fake_github.graphql_requests() if r.operation == "EnqueuePullRequest"]
    assert len(enqueues) == 1


def test_a_merge_refused_for_the_token_goes_out_at_the_first_check_after_the_pause(
    fake_github, repo, rig, clock
):
    """GitHub answered (a rate limit): nothing is in flight, so neither the intent nor the
    claim's in-flight timer holds the merge once the town's pause is over."""
    mr = make_mr(fake_github, rig)
    fake_github.add_fault("rate_limit", method="PUT", path=r"/merge$", reset_in=20)
    run(clock)
    assert reload(mr).state == "open"
    town = mr.bead.town
    town.refresh_from_db()
    assert town.github_blocked_until is not None
    (refused,) = SideEffectIntent.objects.filter(kind=IntentKind.MERGE)
    assert refused.outcome == "token: rate_limited"

    clock.now = town.github_blocked_until + timedelta(seconds=1)
    run(clock)
    assert reload(mr).state == "merged"
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2  # refused, then merged
