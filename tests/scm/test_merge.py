"""Merging through the fake, with GitHub's real refusal messages."""

import pytest

from scm.types import PullRequestRef

REPO = "octo/app"


def _pr(fake, **repo_options):
    fake.create_repo(REPO, **repo_options)
    pull = fake.create_pr(REPO)
    return pull, PullRequestRef(REPO, pull.number)


def test_clean_pr_merges_with_the_checked_head_sha(fake_github, github_client):
    pull, ref = _pr(fake_github)
    outcome = github_client.merge(ref, head_sha=pull.head_sha, methods=["squash"])
    assert outcome.kind == "merged"
    assert outcome.method == "squash"
    assert outcome.sha == fake_github.pull(REPO, pull.number).merge_commit_sha
    assert fake_github.pull(REPO, pull.number).merged


def test_method_not_allowed_moves_to_the_next_method(fake_github, github_client):
    pull, ref = _pr(fake_github, allowed_merge_methods={"merge"})
    outcome = github_client.merge(
        ref, head_sha=pull.head_sha, methods=["squash", "rebase", "merge"]
    )
    assert outcome.kind == "merged"
    assert outcome.method == "merge"
    assert len(fake_github.merge_calls(REPO, pull.number)) == 3


def test_every_method_refused_reports_method_not_allowed(fake_github, github_client):
    pull, ref = _pr(fake_github, allowed_merge_methods={"rebase"})
    outcome = github_client.merge(ref, head_sha=pull.head_sha, methods=["squash", "merge"])
    assert outcome.kind == "method_not_allowed"
    assert outcome.message == "Merge commits are not allowed on this repository."


def test_missing_approval_is_review_required_and_no_other_method_is_tried(
    fake_github, github_client
):
    pull, ref = _pr(fake_github, required_approvals=1)
    outcome = github_client.merge(ref, head_sha=pull.head_sha, methods=["squash", "merge"])
    assert outcome.kind == "review_required"
    assert "approving review is required" in outcome.message
    assert len(fake_github.merge_calls(REPO, pull.number)) == 1


def test_code_owner_review_missing_is_review_required(fake_github, github_client):
    pull, ref = _pr(
        fake_github, required_approvals=1, require_code_owner_review=True, code_owners={"bob"}
    )
    fake_github.approve(REPO, pull.number, by="alice")
    outcome = github_client.merge(ref, head_sha=pull.head_sha, methods=["merge"])
    assert outcome.kind == "review_required"


@pytest.mark.parametrize(("conclusion", "says"), [(None, "is expected"), ("failure", "is failing")])
def test_required_check_expected_or_failing_is_checks_required(
    fake_github, github_client, conclusion, says
):
    pull, ref = _pr(fake_github, required_checks={"ci"})
    if conclusion:
        fake_github.set_check(REPO, pull.number, "ci", conclusion)
    outcome = github_client.merge(ref, head_sha=pull.head_sha, methods=["merge"])
    assert outcome.kind == "checks_required"
    assert outcome.message == f'Required status check "ci" {says}.'


@pytest.mark.parametrize("change", [{"conflict": True}, {"draft": True}])
def test_conflict_or_draft_is_not_mergeable(fake_github, github_client, change):
    pull, ref = _pr(fake_github)
    fake_github.set_pr(REPO, pull.number, **change)
    outcome = github_client.merge(ref, head_sha=pull.head_sha, methods=["merge"])
    assert outcome.kind == "not_mergeable"


def test_moved_head_is_409_head_moved(fake_github, github_client):
    pull, ref = _pr(fake_github)
    checked = pull.head_sha
    fake_github.push(REPO, pull.number)
    outcome = github_client.merge(ref, head_sha=checked, methods=["merge"])
    assert outcome.kind == "head_moved"
    assert outcome.message == "Head branch was modified. Review and try the merge again."
    assert not fake_github.pull(REPO, pull.number).merged


def test_server_error_on_merge_is_transient_and_never_retried(fake_github, github_client):
    pull, ref = _pr(fake_github)
    fake_github.add_fault("status", status=502, method="PUT", path=r"/merge$", times=3)
    outcome = github_client.merge(ref, head_sha=pull.head_sha, methods=["squash", "merge"])
    assert outcome.kind == "transient"
    assert len(fake_github.merge_calls(REPO, pull.number)) == 1


def test_timeout_on_merge_is_transient_and_never_retried(fake_github):
    from scm.client import GitHubClient
    from scm.credentials import resolve_token

    pull, ref = _pr(fake_github)
    client = GitHubClient(resolve_token(None), api_url=fake_github.url, timeout=0.2)
    fake_github.add_fault("slow", method="PUT", path=r"/merge$", delay=0.5)
    outcome = client.merge(ref, head_sha=pull.head_sha, methods=["merge"])
    assert outcome.kind == "transient"
    assert len(fake_github.merge_calls(REPO, pull.number)) == 1


def test_merging_a_missing_pr_is_permanent(fake_github, github_client):
    fake_github.create_repo(REPO)
    outcome = github_client.merge(PullRequestRef(REPO, 404), head_sha="x", methods=["merge"])
    assert outcome.kind == "permanent"
