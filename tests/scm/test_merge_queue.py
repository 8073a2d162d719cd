"""GitHub's merge queue, through the fake: the snapshot sees it, the client enqueues with the
head it checked, a control endpoint makes the head entry merge or fail."""

import json
import urllib.request

import pytest

from scm.blocker import Blocker, derive_blocker
from scm.types import PullRequestRef, Refusal

REPO = "octo/app"


@pytest.fixture
def queued_repo(fake_github):
    fake_github.create_repo(REPO, require_merge_queue=True, required_approvals=1)
    return fake_github


def _ready_pr(fake):
    pull = fake.create_pr(REPO)
    fake.approve(REPO, pull.number)
    return pull, PullRequestRef(REPO, pull.number)


def _snapshot(client, ref):
    return client.fetch_snapshots([ref])[ref].snapshot


def test_ready_pr_on_a_queue_branch_is_ready_and_says_the_queue_is_required(
    queued_repo, github_client
):
    pull, ref = _ready_pr(queued_repo)
    snapshot = _snapshot(github_client, ref)
    assert snapshot.merge_queue_required
    assert snapshot.queue_entry is None
    assert derive_blocker(snapshot) == Blocker.READY
    outcome = github_client.merge(ref, head_sha=pull.head_sha, methods=["squash"])
    assert outcome.refusal == Refusal.MERGE_QUEUE_REQUIRED


def test_pr_on_an_ordinary_branch_does_not_require_the_queue(fake_github, github_client):
    fake_github.create_repo(REPO)
    ref = PullRequestRef(REPO, fake_github.create_pr(REPO).number)
    snapshot = _snapshot(github_client, ref)
    assert not snapshot.merge_queue_required
    assert snapshot.queue_entry is None and snapshot.auto_merge is None


def test_enqueued_prs_show_their_position_and_state(queued_repo, github_client):
    first, first_ref = _ready_pr(queued_repo)
    second, second_ref = _ready_pr(queued_repo)
    snapshot = _snapshot(github_client, first_ref)

    outcome = github_client.enqueue(
        first_ref, expected_head_sha=first.head_sha, node_id=snapshot.node_id
    )
    assert outcome.done
    assert (outcome.queue_entry.position, outcome.queue_entry.state) == (1, "AWAITING_CHECKS")
    github_client.enqueue(second_ref, expected_head_sha=second.head_sha)

    results = github_client.fetch_snapshots([first_ref, second_ref])
    one, two = results[first_ref].snapshot, results[second_ref].snapshot
    assert (one.queue_entry.position, one.queue_entry.state) == (1, "AWAITING_CHECKS")
    assert (two.queue_entry.position, two.queue_entry.state) == (2, "QUEUED")
    assert derive_blocker(one) == derive_blocker(two) == Blocker.QUEUED
    assert queued_repo.merge_queue(REPO) == [first.number, second.number]


def test_enqueue_without_the_node_id_looks_it_up_first(queued_repo, github_client):
    pull, ref = _ready_pr(queued_repo)
    queued_repo.clear_requests()
    assert github_client.enqueue(ref, expected_head_sha=pull.head_sha).done
    assert [r.operation for r in queued_repo.graphql_requests()] == [
        "PullRequestId",
        "EnqueuePullRequest",
    ]


def test_enqueue_with_a_moved_head_is_head_moved_and_queues_nothing(queued_repo, github_client):
    pull, ref = _ready_pr(queued_repo)
    checked = pull.head_sha
    queued_repo.push(REPO, pull.number)
    outcome = github_client.enqueue(ref, expected_head_sha=checked)
    assert outcome.kind == "head_moved"
    assert queued_repo.merge_queue(REPO) == []


def test_enqueue_of_a_pr_missing_its_review_is_refused_with_githubs_reason(
    queued_repo, github_client
):
    pull = queued_repo.create_pr(REPO)
    ref = PullRequestRef(REPO, pull.number)
    outcome = github_client.enqueue(ref, expected_head_sha=pull.head_sha)
    assert outcome.kind == "refused"
    assert "approving review is required" in outcome.message
    assert queued_repo.merge_queue(REPO) == []


def test_enqueue_on_a_branch_without_a_queue_is_not_allowed(fake_github, github_client):
    fake_github.create_repo(REPO)
    pull = fake_github.create_pr(REPO)
    outcome = github_client.enqueue(
        PullRequestRef(REPO, pull.number), expected_head_sha=pull.head_sha
    )
    assert outcome.kind == "not_allowed"


def test_enqueue_server_error_is_transient_and_not_retried(queued_repo, github_client):
    pull, ref = _ready_pr(queued_repo)
    node_id = _snapshot(github_client, ref).node_id
    queued_repo.clear_requests()
    queued_repo.add_fault("status", status=502, path="/graphql", times=2)
    outcome = github_client.enqueue(ref, expected_head_sha=pull.head_sha, node_id=node_id)
    assert outcome.kind == "transient"
    assert len(queued_repo.graphql_requests()) == 1


def test_head_entry_that_merges_closes_the_pr_and_moves_the_queue_up(queued_repo, github_client):
    first, first_ref = _ready_pr(queued_repo)
    second, second_ref = _ready_pr(queued_repo)
    github_client.enqueue(first_ref, expected_head_sha=first.head_sha)
    github_client.enqueue(second_ref, expected_head_sha=second.head_sha)

    webhooks = queued_repo.advance_merge_queue(REPO, result="merge")

    results = github_client.fetch_snapshots([first_ref, second_ref])
    assert derive_blocker(results[first_ref].snapshot) == Blocker.MERGED
    assert results[second_ref].snapshot.queue_entry.position == 1
    assert [(w["action"], w.get("reason")) for w in webhooks] == [
        ("destroyed", "merged"),
        ("checks_requested", None),
    ]
    assert webhooks[1]["merge_group"]["head_ref"].startswith(
        f"refs/heads/gh-readonly-queue/main/pr-{second.number}-"
    )
    assert webhooks[0]["repository"]["full_name"] == REPO


@pytest.mark.parametrize(
    ("result", "cause"), [("fail_checks", "checks_failing"), ("conflict", "conflict")]
)
def test_dropped_entry_leaves_the_queue_and_says_why(queued_repo, github_client, result, cause):
    pull, ref = _ready_pr(queued_repo)
    github_client.enqueue(ref, expected_head_sha=pull.head_sha)

    webhooks = queued_repo.advance_merge_queue(REPO, result=result)

    snapshot = _snapshot(github_client, ref)
    assert snapshot.state == "OPEN" and snapshot.queue_entry is None
    assert derive_blocker(snapshot) == Blocker.READY  # ready again: the PR itself is fine
    removal = github_client.queue_removals([ref])[ref]
    assert removal.cause == cause
    assert removal.head_sha == pull.head_sha
    assert [(w["action"], w.get("reason")) for w in webhooks] == [("destroyed", "invalidated")]


def test_a_pr_never_dropped_has_no_removal(queued_repo, github_client):
    _, ref = _ready_pr(queued_repo)
    assert github_client.queue_removals([ref]) == {ref: None}


def test_push_to_a_queued_pr_takes_it_out_of_the_queue(queued_repo, github_client):
    pull, ref = _ready_pr(queued_repo)
    github_client.enqueue(ref, expected_head_sha=pull.head_sha)
    queued_repo.push(REPO, pull.number)
    assert _snapshot(github_client, ref).queue_entry is None
    assert github_client.queue_removals([ref])[ref].head_sha == pull.head_sha


def test_closing_a_queued_pr_takes_it_out_of_the_queue(queued_repo, github_client):
    first, first_ref = _ready_pr(queued_repo)
    second, second_ref = _ready_pr(queued_repo)
    github_client.enqueue(first_ref, expected_head_sha=first.head_sha)
    github_client.enqueue(second_ref, expected_head_sha=second.head_sha)
    queued_repo.close(REPO, first.number)
    assert queued_repo.merge_queue(REPO) == [second.number]
    assert _snapshot(github_client, second_ref).queue_entry.position == 1
    assert github_client.queue_removals([first_ref])[first_ref] is not None


def test_repository_merge_queue_lists_its_entries(queued_repo, github_client):
    from scm.fake.graphql_exec import execute_graphql, validation_errors

    first, first_ref = _ready_pr(queued_repo)
    github_client.enqueue(first_ref, expected_head_sha=first.head_sha)
    query = """query { repository(owner: "octo", name: "app") { mergeQueue(branch: "main") {
      entries(first: 10) { nodes { position state pullRequest { number } } } } } }"""
    assert validation_errors(query) == []
    answer, _ = execute_graphql(
        queued_repo.state,
        query,
        {},
        web_url="https://github.com",
        remaining=5000,
        reset_at=queued_repo.reset_at,
    )
    nodes = answer["data"]["repository"]["mergeQueue"]["entries"]["nodes"]
    assert nodes == [
        {"position": 1, "state": "AWAITING_CHECKS", "pullRequest": {"number": first.number}}
    ]


def test_queue_is_driven_over_http_by_another_process(queued_repo, github_client):
    pull, ref = _ready_pr(queued_repo)
    github_client.enqueue(ref, expected_head_sha=pull.head_sha)
    request = urllib.request.Request(
        f"{queued_repo.url}/_fake/queues/octo/app/advance",
        data=json.dumps({"result": "merge"}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())
    assert answer["queue"] == []
    assert answer["webhooks"][0]["reason"] == "merged"
    assert queued_repo.pull(REPO, pull.number).merged


def test_advancing_an_empty_queue_is_an_error(queued_repo):
    with pytest.raises(ValueError, match="empty"):
        queued_repo.advance_merge_queue(REPO)


def test_snapshot_with_queue_auto_merge_and_labels_stays_under_003_points_per_pr(
    queued_repo, github_client
):
    refs = []
    for _ in range(50):
        pull, ref = _ready_pr(queued_repo)
        queued_repo.add_label(REPO, pull.number, "gastown:hold")
        refs.append(ref)
    github_client.enqueue(refs[0], expected_head_sha=queued_repo.pull(REPO, 1).head_sha)
    queued_repo.clear_requests()
    results = github_client.fetch_snapshots(refs)
    assert results[refs[0]].snapshot.queue_entry.position == 1
    assert all(r.snapshot.labels == ("gastown:hold",) for r in results.values())
    requests = queued_repo.graphql_requests()
    assert [r.aliases for r in requests] == [37, 13]
    assert sum(r.cost for r in requests) / 50 < 0.05
    assert requests[0].cost / 37 < 0.03


def _parse(**fields):
    from datetime import UTC, datetime

    from scm.snapshots import parse_snapshot

    node = {
        "number": 1,
        "url": "https://github.com/octo/app/pull/1",
        "state": "OPEN",
        "merged": False,
        "isDraft": False,
        "reviewDecision": None,
        "mergeStateStatus": "CLEAN",
        "mergeable": "MERGEABLE",
        "headRefOid": "abc",
        "headRefName": "feature",
        "baseRefName": "main",
        "reviewRequests": {"nodes": []},
        "reviewThreads": {"totalCount": 0, "nodes": []},
        "statusCheckRollup": None,
        **fields,
    }
    ref = PullRequestRef(REPO, 1)
    return parse_snapshot(ref, node, fetched_at=datetime.now(UTC), url=ref.url)


def test_unreadable_queue_entry_still_counts_as_queued_and_is_odd():
    snapshot = _parse(isMergeQueueEnabled=True, mergeQueueEntry={"state": "QUEUED"})
    assert snapshot.queue_entry.state == "UNKNOWN"
    assert "mergeQueueEntry" in snapshot.odd_fields
    assert derive_blocker(snapshot) == Blocker.QUEUED


def test_entry_state_github_added_later_is_unknown():
    snapshot = _parse(mergeQueueEntry={"position": 3, "state": "SHINY_NEW"})
    assert (snapshot.queue_entry.position, snapshot.queue_entry.state) == (3, "UNKNOWN")


def test_unreadable_auto_merge_request_is_odd_and_never_ready():
    snapshot = _parse(autoMergeRequest="yes")
    assert snapshot.auto_merge.method == "UNKNOWN"
    assert derive_blocker(snapshot) == Blocker.UNKNOWN


def test_dequeue_takes_the_pr_out_and_says_who(queued_repo, github_client):
    first, first_ref = _ready_pr(queued_repo)
    second, second_ref = _ready_pr(queued_repo)
    github_client.enqueue(first_ref, expected_head_sha=first.head_sha)
    github_client.enqueue(second_ref, expected_head_sha=second.head_sha)

    outcome = github_client.dequeue(first_ref)

    assert outcome.done
    assert queued_repo.merge_queue(REPO) == [second.number]
    assert _snapshot(github_client, second_ref).queue_entry.state == "AWAITING_CHECKS"
    removal = github_client.queue_removals([first_ref])[first_ref]
    assert "gastown" in removal.reason and removal.cause == "other"
    assert github_client.dequeue(first_ref).kind == "refused"  # no longer queued


def test_nobody_can_enqueue_on_a_branch_without_a_queue(fake_github):
    fake_github.create_repo(REPO)
    pull = fake_github.create_pr(REPO)
    with pytest.raises(ValueError, match="no merge queue"):
        fake_github.enqueue(REPO, pull.number)
