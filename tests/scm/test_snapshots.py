"""Snapshots and blockers through the real client against the fake GitHub over HTTP."""

from scm.blocker import Blocker, derive_blocker
from scm.types import PullRequestRef

REPO = "octo/app"


def _snapshot(client, number: int):
    ref = PullRequestRef(REPO, number)
    result = client.fetch_snapshots([ref])[ref]
    assert result.error is None
    return result.snapshot


def test_pr_needing_review_waits_on_a_human_then_is_ready_once_approved(fake_github, github_client):
    fake_github.create_repo(REPO, required_approvals=1, required_checks={"ci"})
    pr = fake_github.create_pr(REPO, head="feature")
    fake_github.set_check(REPO, pr.number, "ci", "success")
    fake_github.request_review(REPO, pr.number, login="alice", team="core")

    waiting = _snapshot(github_client, pr.number)
    assert waiting.review_decision == "REVIEW_REQUIRED"
    assert waiting.merge_state_status == "BLOCKED"
    assert waiting.requested_reviewers == ("alice", "core")
    assert derive_blocker(waiting) == Blocker.HUMAN_REVIEW

    fake_github.approve(REPO, pr.number, by="alice")
    approved = _snapshot(github_client, pr.number)
    assert approved.review_decision == "APPROVED"
    assert derive_blocker(approved) == Blocker.READY
    assert approved.head_sha == pr.head_sha
    assert approved.url == f"https://github.com/{REPO}/pull/{pr.number}"


def test_failing_required_check_is_reported_with_its_name(fake_github, github_client):
    fake_github.create_repo(REPO, required_approvals=1, required_checks={"ci"})
    pr = fake_github.create_pr(REPO)
    fake_github.set_check(REPO, pr.number, "ci", "failure")
    fake_github.set_check(REPO, pr.number, "lint", None, status="in_progress")
    fake_github.set_check(REPO, pr.number, "docs", "pending", kind="status")

    snapshot = _snapshot(github_client, pr.number)
    assert snapshot.checks == "failing"
    assert [(c.name, c.required, c.state) for c in snapshot.failing_checks] == [
        ("ci", True, "FAILURE")
    ]
    assert {c.name for c in snapshot.pending_checks} == {"lint", "docs"}
    assert derive_blocker(snapshot) == Blocker.CHECKS_FAILING


def test_optional_failing_check_leaves_pr_ready_under_required_checks_rule(
    fake_github, github_client
):
    fake_github.create_repo(REPO, required_checks={"ci"})
    pr = fake_github.create_pr(REPO)
    fake_github.set_check(REPO, pr.number, "ci", "success")
    fake_github.set_check(REPO, pr.number, "lint", "failure")

    snapshot = _snapshot(github_client, pr.number)
    assert snapshot.merge_state_status == "UNSTABLE"
    assert derive_blocker(snapshot, required_checks_only=True) == Blocker.READY
    assert derive_blocker(snapshot) == Blocker.CHECKS_FAILING


def test_draft_conflict_behind_closed_and_merged_are_seen(fake_github, github_client):
    fake_github.create_repo(REPO)
    numbers = [fake_github.create_pr(REPO).number for _ in range(5)]
    fake_github.set_pr(REPO, numbers[0], draft=True)
    fake_github.set_pr(REPO, numbers[1], conflict=True)
    fake_github.set_pr(REPO, numbers[2], behind=True)
    fake_github.close(REPO, numbers[3])
    fake_github.merge_externally(REPO, numbers[4])

    results = github_client.fetch_snapshots([PullRequestRef(REPO, n) for n in numbers])
    blockers = [derive_blocker(results[PullRequestRef(REPO, n)].snapshot) for n in numbers]
    assert blockers == [
        Blocker.DRAFT,
        Blocker.CONFLICT,
        Blocker.BEHIND,
        Blocker.CLOSED,
        Blocker.MERGED,
    ]


def test_unresolved_threads_block_unless_the_classifier_says_otherwise(fake_github, github_client):
    fake_github.create_repo(REPO)
    pr = fake_github.create_pr(REPO)
    fake_github.add_thread(REPO, pr.number, body="nit: rename this")
    fake_github.add_thread(REPO, pr.number, body="this leaks memory")
    fake_github.add_thread(REPO, pr.number, body="done", resolved=True)
    ref = PullRequestRef(REPO, pr.number)

    plain = github_client.fetch_snapshots([ref])[ref].snapshot
    assert (plain.unresolved_threads, plain.blocking_threads) == (2, 2)
    assert derive_blocker(plain) == Blocker.THREADS

    seen = []

    def classifier(thread):
        seen.append(thread.comments[0].body)
        return not thread.comments[0].body.startswith("nit:")

    fake_github.clear_requests()
    judged = github_client.fetch_snapshots([ref], thread_classifier=classifier)[ref].snapshot
    assert judged.blocking_threads == 1
    assert sorted(seen) == ["nit: rename this", "this leaks memory"]
    assert [r.operation for r in fake_github.graphql_requests()] == [
        "PullRequestSnapshots",
        "PullRequestThreads",
    ]


def test_thread_comments_are_asked_only_for_prs_with_unresolved_threads(fake_github, github_client):
    fake_github.create_repo(REPO)
    quiet = fake_github.create_pr(REPO)
    talky = fake_github.create_pr(REPO)
    fake_github.add_thread(REPO, talky.number, body="why?")
    refs = [PullRequestRef(REPO, quiet.number), PullRequestRef(REPO, talky.number)]

    github_client.fetch_snapshots(refs, thread_classifier=lambda thread: True)
    threads_requests = [
        r for r in fake_github.graphql_requests() if r.operation == "PullRequestThreads"
    ]
    assert [r.aliases for r in threads_requests] == [1]


def test_failing_classifier_counts_the_thread_blocking(fake_github, github_client):
    fake_github.create_repo(REPO)
    pr = fake_github.create_pr(REPO)
    fake_github.add_thread(REPO, pr.number, body="hm")
    ref = PullRequestRef(REPO, pr.number)

    def broken(thread):
        raise RuntimeError("model unavailable")

    snapshot = github_client.fetch_snapshots([ref], thread_classifier=broken)[ref].snapshot
    assert snapshot.blocking_threads == 1


def test_future_enum_value_keeps_the_rest_of_the_answer(fake_github, github_client):
    fake_github.create_repo(REPO, required_approvals=1)
    pr = fake_github.create_pr(REPO)
    fake_github.approve(REPO, pr.number)
    fake_github.set_check(REPO, pr.number, "ci", "success")
    fake_github.add_fault(
        "rewrite_enum", path="/graphql", field="mergeStateStatus", value="QUEUED_FOR_FUTURE"
    )

    snapshot = _snapshot(github_client, pr.number)
    assert snapshot.merge_state_status == "UNKNOWN"
    assert snapshot.odd_fields == ("mergeStateStatus",)
    assert snapshot.review_decision == "APPROVED"
    assert snapshot.head_sha == pr.head_sha
    assert snapshot.checks == "passing"
    assert derive_blocker(snapshot) == Blocker.UNKNOWN


def test_future_review_decision_is_normalised_to_unknown(fake_github, github_client):
    fake_github.create_repo(REPO, required_approvals=1)
    pr = fake_github.create_pr(REPO)
    fake_github.approve(REPO, pr.number)
    fake_github.add_fault(
        "rewrite_enum", path="/graphql", field="reviewDecision", value="APPROVED_BY_BOT"
    )

    snapshot = _snapshot(github_client, pr.number)
    assert snapshot.review_decision == "UNKNOWN"
    assert snapshot.merge_state_status == "CLEAN"
    assert derive_blocker(snapshot) == Blocker.UNKNOWN


def test_duplicate_refs_are_asked_once(fake_github, github_client):
    fake_github.create_repo(REPO)
    pr = fake_github.create_pr(REPO)
    ref = PullRequestRef(REPO, pr.number)
    results = github_client.fetch_snapshots([ref, ref])
    assert list(results) == [ref]
    assert fake_github.graphql_requests()[0].aliases == 1


def test_failing_required_check_past_the_first_page_is_checks_failing(fake_github, github_client):
    from scm.graphql import CONTEXTS_LIMIT

    fake_github.create_repo(REPO, required_checks={"deploy-preview"})
    pr = fake_github.create_pr(REPO)
    for i in range(CONTEXTS_LIMIT + 5):
        fake_github.set_check(REPO, pr.number, f"test-shard-{i}", "success")
    fake_github.set_check(REPO, pr.number, "deploy-preview", "failure")

    snapshot = _snapshot(github_client, pr.number)
    assert snapshot.merge_state_status == "BLOCKED"
    assert snapshot.checks == "failing"
    assert derive_blocker(snapshot) == Blocker.CHECKS_FAILING
    assert derive_blocker(snapshot, required_checks_only=True) == Blocker.CHECKS_FAILING


def test_pending_required_check_past_the_first_page_is_checks_pending(fake_github, github_client):
    from scm.graphql import CONTEXTS_LIMIT

    fake_github.create_repo(REPO, required_checks={"e2e"})
    pr = fake_github.create_pr(REPO)
    for i in range(CONTEXTS_LIMIT):
        fake_github.set_check(REPO, pr.number, f"unit-{i}", "success")
    fake_github.set_check(REPO, pr.number, "e2e", None, status="in_progress")

    snapshot = _snapshot(github_client, pr.number)
    assert derive_blocker(snapshot, required_checks_only=True) == Blocker.CHECKS_PENDING
