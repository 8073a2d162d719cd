"""GitHub's budget as a design (docs/domain.md §4, "Cadence" and "Budget"): each PR read as
often as its state can change, waits on a person confirmed for free with a conditional
request, a webhook making a PR due at once, and one token's points shared by its towns."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client

from beads.models import Blocker, MergeRequest
from gastown.feedback.selectors import FULL_READ_EVERY, merge_requests_due
from gastown.models import FeedbackCheckRun
from tests.factories import RigFactory, TownFactory
from tests.feedback.conftest import REPO, make_mr, reload, run

pytestmark = pytest.mark.django_db

SAFETY_NET = timedelta(minutes=10)
SECRET = "budget-secret"


@pytest.fixture(autouse=True)
def safety_net(settings):
    settings.GASTOWN_SAFETY_NET_SECONDS = int(SAFETY_NET.total_seconds())
    settings.GITHUB_WEBHOOK_SECRET = SECRET


def _due(town, clock) -> set[int]:
    return {mr.pk for mr in merge_requests_due(town=town, now=clock.now)}


def _reads(fake_github) -> int:
    """PRs read in full (GraphQL snapshot documents' aliases)."""
    return sum(
        r.aliases for r in fake_github.graphql_requests() if r.operation == "PullRequestSnapshots"
    )


def test_a_pr_waiting_on_a_reviewer_is_read_at_the_safety_net_one_with_running_checks_each_minute(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO, required_approvals=1, required_checks={"ci"})
    waiting = make_mr(fake_github, rig)
    fake_github.set_check(REPO, waiting.pr_number, "ci", "success")
    running = make_mr(fake_github, rig)
    fake_github.approve(REPO, running.pr_number)
    fake_github.set_check(REPO, running.pr_number, "ci", None, status="in_progress")
    run(clock)
    assert reload(waiting).blocker == Blocker.HUMAN_REVIEW
    assert reload(running).blocker == Blocker.CHECKS_PENDING

    # Due DUE_EARLY (10%) of its interval early: the safety net's 10 minutes at minute 9.
    for minute in range(1, 9):
        clock.advance(minutes=1)
        assert _due(town, clock) == {running.pk}, minute
        run(clock)
    clock.advance(minutes=1)
    assert _due(town, clock) == {waiting.pk, running.pk}


def test_without_webhooks_every_pr_is_read_at_the_poll_interval(fake_github, town, rig, clock):
    from django.conf import settings

    settings.GASTOWN_SAFETY_NET_SECONDS = 0
    fake_github.create_repo(REPO, required_approvals=1)
    waiting = make_mr(fake_github, rig)
    run(clock)
    assert reload(waiting).blocker == Blocker.HUMAN_REVIEW
    clock.advance(minutes=1)
    assert _due(town, clock) == {waiting.pk}


def test_a_pr_due_early_is_read_by_the_pass_that_finds_it_due(fake_github, town, rig, clock):
    """The claim agrees with the selection: a PR due DUE_EARLY of its interval early is
    claimed and read, not left for a whole extra interval (approval to merge took two polls)."""
    from django.conf import settings

    settings.GASTOWN_SAFETY_NET_SECONDS = 0
    fake_github.create_repo(REPO, required_approvals=1)
    waiting = make_mr(fake_github, rig)
    run(clock)
    fake_github.approve(REPO, waiting.pr_number)
    clock.advance(seconds=55)  # due at 54 s (a tenth early), not yet a whole minute
    assert _due(town, clock) == {waiting.pk}
    assert run(clock).checked == 1
    assert reload(waiting).state == "merged"


def test_the_reconciler_asks_for_a_check_only_when_one_is_due(fake_github, town, rig, clock):
    from gastown.reconciler.load import load_snapshot
    from gastown.reconciler.rules import mr_is_due

    fake_github.create_repo(REPO, required_approvals=1)
    waiting = make_mr(fake_github, rig)
    run(clock)
    clock.advance(minutes=5)
    snapshot = load_snapshot(town, clock.now)
    [mr] = [m for m in snapshot.merge_requests if m.pk == waiting.pk]
    assert not mr_is_due(snapshot, mr)
    clock.advance(minutes=5)
    snapshot = load_snapshot(town, clock.now)
    [mr] = [m for m in snapshot.merge_requests if m.pk == waiting.pk]
    assert mr_is_due(snapshot, mr)


def _review_webhook(number: int) -> bytes:
    path = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
    body = (path / "pull_request_review.submitted.json").read_text()
    body = body.replace("Codertocat/Hello-World", REPO).replace(
        '"number": 2', f'"number": {number}'
    )
    return body.replace("/pull/2", f"/pull/{number}").encode()


def test_a_webhook_makes_a_waiting_pr_due_at_once_and_it_is_read_in_full(
    fake_github, town, rig, clock
):
    town.auto_merge = False
    town.save()
    fake_github.create_repo(REPO, required_approvals=1)
    make_mr(fake_github, rig)
    waiting = make_mr(fake_github, rig)
    assert waiting.pr_number == 2  # the example payload's
    run(clock)
    clock.advance(minutes=1)
    assert waiting.pk not in _due(town, clock)

    fake_github.approve(REPO, waiting.pr_number)
    body = _review_webhook(waiting.pr_number)
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = Client().post(
        "/webhooks/github",
        body,
        content_type="application/json",
        headers={
            "X-GitHub-Event": "pull_request_review",
            "X-GitHub-Delivery": "budget-1",
            "X-Hub-Signature-256": signature,
        },
    )
    assert response.status_code < 300
    assert _due(town, clock) == {waiting.pk}, (_due(town, clock), waiting.pk)
    fake_github.clear_requests()
    run(clock)
    assert _reads(fake_github) == 1  # in full: the webhook says it changed
    assert reload(waiting).blocker == Blocker.READY


def test_an_unchanged_waiting_pr_is_confirmed_with_a_free_304_and_no_graphql(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock)
    first = reload(mr)
    assert first.blocker == Blocker.HUMAN_REVIEW
    assert first.pr_etag  # learnt before the snapshot was read

    clock.advance(minutes=10)
    fake_github.clear_requests()
    left = fake_github.core_remaining
    summary = run(clock)

    assert _reads(fake_github) == 0
    assert [(r.method, r.status) for r in fake_github.requests] == [("GET", 304)]
    assert fake_github.core_remaining == left  # GitHub does not count a 304
    assert summary.not_modified == 1
    mr = reload(mr)
    assert mr.last_successful_check_at == clock.now
    assert mr.snapshot_at == first.snapshot_at  # the snapshot stands
    record = FeedbackCheckRun.objects.latest("pk")
    assert (record.conditional_requests, record.not_modified, record.graphql_points) == (1, 1, 0)

    # The bead page says the snapshot was confirmed since it was read.
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    admin = get_user_model().objects.create_superuser("boss", "", None)
    client = Client()
    client.force_login(admin)
    page = client.get(reverse("dashboard:bead", args=[town.slug, mr.bead_id]))
    assert page.status_code == 200
    assert "confirmed unchanged" in page.content.decode()


def test_a_changed_waiting_pr_is_read_in_full_after_the_conditional_request(
    fake_github, town, rig, clock
):
    town.auto_merge = False
    town.save()
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock)
    etag = reload(mr).pr_etag
    fake_github.approve(REPO, mr.pr_number)  # no webhook: the safety net finds it

    clock.advance(minutes=10)
    fake_github.clear_requests()
    run(clock)

    assert [(r.method, r.status) for r in fake_github.requests[:1]] == [("GET", 200)]
    assert _reads(fake_github) == 1
    mr = reload(mr)
    assert mr.blocker == Blocker.READY
    assert mr.pr_etag != etag


def test_a_waiting_pr_is_still_read_in_full_every_few_safety_nets(fake_github, town, rig, clock):
    # The REST representation does not show a check re-run or a thread: a full read now and
    # then catches what no webhook told.
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock)
    fake_github.clear_requests()
    for _ in range(FULL_READ_EVERY - 1):
        clock.advance(minutes=10)
        run(clock)
    assert _reads(fake_github) == 0
    clock.advance(minutes=10)
    run(clock)
    assert _reads(fake_github) == 1
    assert reload(mr).snapshot_at == clock.now


def test_a_pass_reads_no_more_prs_than_its_budget_and_the_rest_go_first_next_time(
    fake_github, town, rig, clock, settings
):
    # 60 points an hour: a pass a minute may spend 1 point, one document of 37 PRs (the
    # town saved nothing: its last pass spent what it had).
    settings.GASTOWN_GITHUB_POINTS_PER_HOUR = 60
    town.auto_merge = False
    town.save()
    fake_github.create_repo(REPO)
    mrs = [make_mr(fake_github, rig) for _ in range(50)]
    FeedbackCheckRun.objects.create(
        town=town,
        started_at=clock.now - timedelta(minutes=1),
        token="GITHUB_TOKEN",
        graphql_points=2,
    )
    fake_github.clear_requests()
    summary = run(clock)
    assert summary.checked == 37
    assert [r.cost for r in fake_github.graphql_requests()] == [1]
    left = {mr.pk for mr in mrs if reload(mr).last_checked_at is None}
    assert len(left) == 13

    clock.advance(minutes=1)
    fake_github.clear_requests()
    run(clock)
    assert all(reload(mr).last_checked_at is not None for mr in mrs)  # the 13 went first
    assert [r.aliases for r in fake_github.graphql_requests()] == [37]


def test_towns_sharing_a_token_share_its_points_by_their_prs_and_none_starves(
    fake_github, clock, settings
):
    settings.GASTOWN_GITHUB_POINTS_PER_HOUR = 120  # 2 points a minute for both towns
    fake_github.create_repo(REPO)
    big, small = TownFactory(auto_merge=False), TownFactory(auto_merge=False)
    big_rig, small_rig = RigFactory(town=big, repo=REPO), RigFactory(town=small, repo=REPO)
    big_mrs = [make_mr(fake_github, big_rig) for _ in range(60)]
    small_mrs = [make_mr(fake_github, small_rig) for _ in range(20)]

    points_by_minute = []
    for _ in range(20):
        fake_github.clear_requests()
        run(clock)
        points_by_minute.append(sum(r.cost for r in fake_github.graphql_requests()))
        clock.advance(minutes=1)

    # Never more than the token's part over any ten minutes (one pass of slack)...
    for start in range(len(points_by_minute) - 10):
        assert sum(points_by_minute[start : start + 10]) <= 120 * 11 / 60
    # ...and past the first burst, about its rate.
    assert sum(points_by_minute[10:]) <= 2 * 10 + 2, points_by_minute
    runs = FeedbackCheckRun.objects.filter(started_at__gte=clock.now - timedelta(minutes=10))
    assert {r.token for r in runs} == {"GITHUB_TOKEN"}
    spent = {
        town.pk: sum(r.graphql_points for r in runs if r.town_id == town.pk)
        for town in (big, small)
    }
    assert spent[big.pk] > spent[small.pk] > 0  # by their PRs, and the small town is not starved
    recent = clock.now - timedelta(minutes=10)
    for mr in [*big_mrs, *small_mrs]:
        assert MergeRequest.objects.get(pk=mr.pk).last_checked_at >= recent


@pytest.mark.parametrize(("remaining", "documents"), [(None, 150), (600, 20), (0, 0)])
def test_github_s_own_count_spreads_what_is_left_to_its_reset(town, clock, remaining, documents):
    from gastown.feedback.budget import pass_budget

    if remaining is not None:
        FeedbackCheckRun.objects.create(
            town=TownFactory(),
            started_at=clock.now - timedelta(hours=2),
            token="GITHUB_TOKEN",
            graphql_remaining=remaining,
            graphql_reset_at=clock.now + timedelta(minutes=60),
        )
    budget = pass_budget(town=town, token="GITHUB_TOKEN", now=clock.now)
    # 4,500 points an hour: 75 a minute, two minutes saved up; 600 left for an hour: 10.
    assert budget.points == documents
    assert budget.reads == documents * 37


def _timers(town_id: int) -> int:
    from django_q.brokers import get_broker

    return sum(
        1
        for task in get_broker().waiting_tasks()
        if task.get("func") == "gastown.tasks.check_prs_later_task"
        and tuple(task.get("args") or ()) == (town_id,)
    )


def test_a_pass_queues_the_towns_next_check_for_when_its_next_pr_falls_due(
    fake_github, town, rig, clock, settings
):
    # The schedule alone (once a minute, woken every 30 s) left a PR for a second interval.
    from django_q.brokers import get_broker

    fake_github.create_repo(REPO, required_checks={"ci"})
    mr = make_mr(fake_github, rig)
    fake_github.set_check(REPO, mr.pr_number, "ci", None, status="in_progress")
    settings.GASTOWN_ENQUEUE_TASKS = True
    get_broker().purge_queue()
    run(clock)
    assert reload(mr).blocker == Blocker.CHECKS_PENDING
    assert _timers(town.pk) == 1
    run(clock)  # nothing due: the timer already queued stands, no second one
    assert _timers(town.pk) == 1


def test_no_check_is_queued_for_a_pr_due_after_the_minute(fake_github, town, rig, clock, settings):
    from django_q.brokers import get_broker

    settings.GASTOWN_SAFETY_NET_SECONDS = 600
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    settings.GASTOWN_ENQUEUE_TASKS = True
    get_broker().purge_queue()
    run(clock)
    assert reload(mr).blocker == Blocker.HUMAN_REVIEW  # read again at the safety net
    assert _timers(town.pk) == 0
