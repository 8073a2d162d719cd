"""Hold labels (names in the snapshot, who added one on demand, webhook payloads) and
deleting a head branch after its merge."""

import json
import urllib.request

import pytest

from scm.blocker import Blocker, derive_blocker, held_by
from scm.errors import ScmError
from scm.types import PullRequestRef

REPO = "octo/app"
HOLD = "gastown:hold"


@pytest.fixture
def pr(fake_github):
    fake_github.create_repo(REPO)
    pull = fake_github.create_pr(REPO)
    return pull, PullRequestRef(REPO, pull.number)


def _snapshot(client, ref):
    return client.fetch_snapshots([ref])[ref].snapshot


def test_labels_are_in_the_snapshot_and_a_hold_label_holds(fake_github, github_client, pr):
    pull, ref = pr
    fake_github.add_label(REPO, pull.number, "bug")
    fake_github.add_label(REPO, pull.number, "Gastown:Hold", by="dana")
    snapshot = _snapshot(github_client, ref)
    assert snapshot.labels == ("bug", "Gastown:Hold")
    assert held_by(snapshot, [HOLD]) == "Gastown:Hold"
    assert derive_blocker(snapshot, hold_labels=[HOLD]) == Blocker.HELD_BY_LABEL
    assert derive_blocker(snapshot) == Blocker.READY  # no hold label configured


def test_removing_the_hold_label_makes_the_pr_ready(fake_github, github_client, pr):
    pull, ref = pr
    fake_github.add_label(REPO, pull.number, HOLD)
    fake_github.remove_label(REPO, pull.number, HOLD)
    assert derive_blocker(_snapshot(github_client, ref), hold_labels=[HOLD]) == Blocker.READY


def test_a_queued_pr_is_queued_even_with_a_hold_label(fake_github, github_client):
    fake_github.create_repo(REPO, require_merge_queue=True)
    pull = fake_github.create_pr(REPO)
    fake_github.enqueue(REPO, pull.number)
    fake_github.add_label(REPO, pull.number, HOLD)
    snapshot = _snapshot(github_client, PullRequestRef(REPO, pull.number))
    assert derive_blocker(snapshot, hold_labels=[HOLD]) == Blocker.QUEUED


def test_label_events_say_who_last_added_the_label(fake_github, github_client, pr):
    pull, ref = pr
    other = PullRequestRef(REPO, fake_github.create_pr(REPO).number)
    fake_github.add_label(REPO, pull.number, HOLD, by="dana")
    fake_github.add_label(REPO, pull.number, "bug", by="erin")
    fake_github.remove_label(REPO, pull.number, HOLD)
    fake_github.add_label(REPO, pull.number, HOLD, by="frank")
    fake_github.clear_requests()

    events = github_client.label_events([ref, other], HOLD)

    assert events[ref].actor == "frank"
    assert events[ref].at is not None
    assert events[other] is None
    (request,) = fake_github.graphql_requests()
    assert request.operation == "PullRequestLabelEvents"


def test_labeled_and_unlabeled_webhook_payloads(fake_github, pr):
    pull, _ = pr
    added = fake_github.add_label(REPO, pull.number, HOLD, by="dana")
    removed = fake_github.remove_label(REPO, pull.number, HOLD, by="erin")
    assert (added["action"], added["label"]["name"], added["sender"]["login"]) == (
        "labeled",
        HOLD,
        "dana",
    )
    assert added["pull_request"]["labels"] == [{"name": HOLD}]
    assert added["repository"]["full_name"] == REPO
    assert added["number"] == pull.number
    assert (removed["action"], removed["pull_request"]["labels"]) == ("unlabeled", [])


def test_labels_over_http_return_the_webhook_payload(fake_github, pr):
    pull, _ = pr
    request = urllib.request.Request(
        f"{fake_github.url}/_fake/pulls/{REPO}/{pull.number}/labels",
        data=json.dumps({"name": HOLD, "by": "dana"}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())
    assert answer["labels"] == [HOLD]
    assert answer["webhook"]["action"] == "labeled"


def test_delete_branch_after_merge(fake_github, github_client, pr):
    pull, ref = pr
    github_client.merge(ref, head_sha=pull.head_sha, methods=["merge"])
    assert github_client.delete_branch(REPO, pull.head) is True
    assert fake_github.branch_sha(REPO, pull.head) is None
    assert github_client.delete_branch(REPO, pull.head) is False  # already gone


def test_default_branch_is_never_deleted_and_nothing_is_sent(fake_github, github_client, pr):
    with pytest.raises(ScmError) as caught:
        github_client.delete_branch(REPO, "main")
    assert caught.value.kind == "refused"
    assert not [r for r in fake_github.requests if r.method == "DELETE"]
    assert fake_github.branch_sha(REPO, "main") is not None


def test_protected_branch_deletion_is_refused_by_github(fake_github, github_client):
    fake_github.create_repo(REPO, protected_branches={"main", "release"})
    fake_github.create_branch(REPO, "release")
    with pytest.raises(ScmError) as caught:
        github_client.delete_branch(REPO, "release")
    assert caught.value.kind == "refused"
    assert "Cannot delete a protected branch" in caught.value.message


def test_deleting_an_open_prs_head_closes_it_as_github_does(fake_github, github_client, pr):
    pull, ref = pr
    assert github_client.delete_branch(REPO, pull.head)
    assert _snapshot(github_client, ref).state == "CLOSED"
