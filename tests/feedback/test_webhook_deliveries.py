"""The fake GitHub's own deliveries, over real HTTP, to the app's webhook endpoint served by a
live server: each event the fake sends is accepted, makes its PR due and queues a check at
once; an approval delivered this way is merged by the next check, in the same minute.

The suite's SQLite database is shared in memory with the live server's thread, where two
writers at once fail instead of waiting: each test lets the deliveries finish before it writes,
and a hook is added once the PR is set up (or subscribes only to what the test needs)."""

from __future__ import annotations

import pytest
from django_q.brokers import get_broker

from beads.models import BeadStatus, Blocker
from tests.feedback.conftest import REPO, make_mr, reload, run

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "fake-to-app"


def _hook(fake, live_server, settings, **options):
    settings.GITHUB_WEBHOOK_SECRET = SECRET
    hook = fake.add_hook(f"{live_server.url}/webhooks/github", secret=SECRET, **options)
    [ping] = fake.wait_for_deliveries()
    assert (ping.event, ping.status_code) == ("ping", 200)
    return hook


def _queued_checks(town_id: int) -> int:
    return sum(
        1
        for task in get_broker().waiting_tasks()
        if task.get("func") == "gastown.tasks.check_prs_task"
        and tuple(task.get("args") or ()) == (town_id,)
    )


def _green_waiting_pr(fake, rig, clock):
    fake.create_repo(REPO, required_approvals=1, required_checks={"ci"})
    mr = make_mr(fake, rig)
    fake.set_check(REPO, mr.pr_number, "ci", "success")
    run(clock)
    assert reload(mr).blocker == Blocker.HUMAN_REVIEW
    assert reload(mr).check_requested_at is None
    return mr


def test_an_approval_delivered_by_the_fake_merges_the_pr_in_the_same_minute(
    fake_github, live_server, rig, clock, settings
):
    mr = _green_waiting_pr(fake_github, rig, clock)
    _hook(fake_github, live_server, settings, repo=REPO, events=["pull_request_review"])
    settings.GASTOWN_ENQUEUE_TASKS = True
    get_broker().purge_queue()

    fake_github.approve(REPO, mr.pr_number, by="alice")
    [delivery, *_] = fake_github.wait_for_deliveries()

    assert (delivery.event, delivery.action) == ("pull_request_review", "submitted")
    assert delivery.status_code == 202, delivery.response_body
    assert '"merge_requests": 1' in delivery.response_body
    assert reload(mr).check_requested_at is not None
    assert _queued_checks(rig.town_id) == 1

    run(clock)  # the queued check, at the same instant: no poll interval passed
    mr = reload(mr)
    assert fake_github.pull(REPO, mr.pr_number).merged
    assert mr.bead.status == BeadStatus.CLOSED
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1


@pytest.mark.parametrize(
    "act,event,action",
    [
        (lambda f, n: f.set_check(REPO, n, "lint", "failure"), "check_run", "completed"),
        (lambda f, n: f.set_check(REPO, n, "lint", "success"), "check_suite", "completed"),
        (lambda f, n: f.set_check(REPO, n, "legacy", "failure", kind="status"), "status", None),
        (lambda f, n: f.request_changes(REPO, n), "pull_request_review", "submitted"),
        (lambda f, n: f.push(REPO, n), "pull_request", "synchronize"),
        (lambda f, n: f.add_label(REPO, n, "gastown:hold"), "pull_request", "labeled"),
        (lambda f, n: f.close(REPO, n), "pull_request", "closed"),
        (lambda f, n: f.merge_externally(REPO, n), "pull_request", "closed"),
    ],
)
def test_each_event_the_fake_delivers_makes_its_pr_due(
    fake_github, live_server, settings, rig, clock, act, event, action
):
    mr = _green_waiting_pr(fake_github, rig, clock)
    _hook(fake_github, live_server, settings, repo=REPO)

    act(fake_github, mr.pr_number)
    delivered = [
        d for d in fake_github.wait_for_deliveries() if (d.event, d.action) == (event, action)
    ]

    assert delivered, f"no {event} {action} delivered"
    assert all(d.status_code == 202 for d in delivered), delivered[0].response_body
    assert '"merge_requests": 1' in delivered[0].response_body
    assert reload(mr).check_requested_at is not None


def test_merge_group_events_make_the_queued_prs_due(fake_github, live_server, settings, rig, clock):
    fake_github.create_repo(REPO, require_merge_queue=True)
    first, second = make_mr(fake_github, rig), make_mr(fake_github, rig)
    run(clock)  # both ready: gastown enqueues them
    assert fake_github.merge_queue(REPO) == [first.pr_number, second.pr_number]
    _hook(fake_github, live_server, settings, events=["merge_group"])

    fake_github.advance_merge_queue(REPO, result="merge")
    groups = fake_github.wait_for_deliveries()[:2]
    assert [(d.action, d.payload.get("reason"), d.status_code) for d in groups] == [
        ("checks_requested", None, 202),
        ("destroyed", "merged", 202),
    ]
    assert reload(first).check_requested_at is not None
    assert reload(second).check_requested_at is not None
    run(clock)
    assert reload(first).bead.status == BeadStatus.CLOSED
    assert reload(second).blocker == Blocker.QUEUED


def test_a_delivery_with_another_secret_is_refused_and_recorded(fake_github, live_server, settings):
    settings.GITHUB_WEBHOOK_SECRET = SECRET
    fake_github.create_repo(REPO)
    fake_github.add_hook(f"{live_server.url}/webhooks/github", secret="not-the-secret")
    [ping] = fake_github.wait_for_deliveries()
    assert (ping.status_code, ping.status) == (403, "Invalid HTTP Response: 403")
