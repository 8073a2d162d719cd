"""GitHub's native auto-merge, through the fake: recognised in the snapshot whoever enabled
it, enabled by the client with the head it checked, and GitHub merging the PR by itself."""

import pytest

from scm.blocker import Blocker, derive_blocker
from scm.types import PullRequestRef

REPO = "octo/app"


def _pr(fake, **repo_options):
    fake.create_repo(REPO, **repo_options)
    pull = fake.create_pr(REPO)
    return pull, PullRequestRef(REPO, pull.number)


def _snapshot(client, ref):
    return client.fetch_snapshots([ref])[ref].snapshot


def test_auto_merge_someone_enabled_is_seen_with_who_and_how(fake_github, github_client):
    pull, ref = _pr(fake_github, required_approvals=1)
    fake_github.enable_auto_merge(REPO, pull.number, by="carol", method="REBASE")
    snapshot = _snapshot(github_client, ref)
    assert snapshot.auto_merge.enabled_by == "carol"
    assert snapshot.auto_merge.method == "REBASE"
    assert snapshot.auto_merge.enabled_at is not None
    assert derive_blocker(snapshot) == Blocker.HUMAN_REVIEW  # what GitHub waits for


def test_github_merges_an_auto_merge_pr_by_itself_once_approved(fake_github, github_client):
    pull, ref = _pr(fake_github, required_approvals=1)
    fake_github.enable_auto_merge(REPO, pull.number, by="carol", method="SQUASH")
    fake_github.approve(REPO, pull.number)
    snapshot = _snapshot(github_client, ref)
    assert derive_blocker(snapshot) == Blocker.MERGED
    assert fake_github.pull(REPO, pull.number).merge_method == "squash"
    assert fake_github.merge_calls(REPO, pull.number) == []


def test_client_enables_auto_merge_and_github_merges_when_checks_pass(fake_github, github_client):
    pull, ref = _pr(fake_github, required_checks={"ci"})
    fake_github.set_check(REPO, pull.number, "ci", None, status="in_progress")
    snapshot = _snapshot(github_client, ref)

    outcome = github_client.enable_auto_merge(
        ref, method="squash", expected_head_sha=pull.head_sha, node_id=snapshot.node_id
    )
    assert outcome.done
    assert (outcome.auto_merge.enabled_by, outcome.auto_merge.method) == ("gastown", "SQUASH")
    assert _snapshot(github_client, ref).auto_merge.enabled_by == "gastown"

    fake_github.set_check(REPO, pull.number, "ci", "success")
    assert _snapshot(github_client, ref).merged


def test_auto_merge_of_a_pr_github_could_merge_now_is_clean(fake_github, github_client):
    pull, ref = _pr(fake_github)
    outcome = github_client.enable_auto_merge(ref, method="merge", expected_head_sha=pull.head_sha)
    assert outcome.kind == "clean"
    assert outcome.message == "Pull request Pull request is in clean status"
    assert _snapshot(github_client, ref).auto_merge is None


def test_auto_merge_on_a_repository_that_does_not_allow_it(fake_github, github_client):
    pull, ref = _pr(fake_github, required_approvals=1, allow_auto_merge=False)
    outcome = github_client.enable_auto_merge(ref, method="merge", expected_head_sha=pull.head_sha)
    assert outcome.kind == "not_allowed"
    assert outcome.message == "Auto merge is not allowed for this repository"


def test_auto_merge_with_a_moved_head_is_head_moved(fake_github, github_client):
    pull, ref = _pr(fake_github, required_approvals=1)
    checked = pull.head_sha
    fake_github.push(REPO, pull.number)
    outcome = github_client.enable_auto_merge(ref, method="merge", expected_head_sha=checked)
    assert outcome.kind == "head_moved"
    assert fake_github.pull(REPO, pull.number).auto_merge is None


def test_disable_auto_merge(fake_github, github_client):
    pull, ref = _pr(fake_github, required_approvals=1)
    fake_github.enable_auto_merge(REPO, pull.number)
    assert github_client.disable_auto_merge(ref).done
    assert _snapshot(github_client, ref).auto_merge is None


def test_auto_merge_on_a_queue_branch_enqueues_once_ready(fake_github, github_client):
    pull, ref = _pr(fake_github, required_approvals=1, require_merge_queue=True)
    outcome = github_client.enable_auto_merge(ref, method="merge", expected_head_sha=pull.head_sha)
    assert outcome.done
    assert _snapshot(github_client, ref).queue_entry is None
    fake_github.approve(REPO, pull.number)
    snapshot = _snapshot(github_client, ref)
    assert snapshot.queue_entry.position == 1
    assert derive_blocker(snapshot) == Blocker.QUEUED


def test_a_forbidden_write_is_a_credential_error(fake_github, github_client):
    from scm.errors import CredentialError

    pull, ref = _pr(fake_github, required_approvals=1)
    node_id = _snapshot(github_client, ref).node_id
    fake_github.add_fault("graphql_errors", path="/graphql", error_type="FORBIDDEN")
    with pytest.raises(CredentialError) as caught:
        github_client.enable_auto_merge(
            ref, method="merge", expected_head_sha=pull.head_sha, node_id=node_id
        )
    assert caught.value.kind == "forbidden"


def test_auto_merge_of_a_pr_failing_only_optional_checks_is_clean_too(fake_github, github_client):
    pull, ref = _pr(fake_github, required_checks={"ci"})
    fake_github.set_check(REPO, pull.number, "ci", "success")
    fake_github.set_check(REPO, pull.number, "lint", "failure")
    outcome = github_client.enable_auto_merge(ref, method="merge", expected_head_sha=pull.head_sha)
    assert outcome.message == "Pull request Pull request is in unstable status"
    assert outcome.kind == "clean"


def test_auto_merge_of_a_conflicting_pr_is_refused(fake_github, github_client):
    pull, ref = _pr(fake_github)
    fake_github.set_pr(REPO, pull.number, conflict=True)
    outcome = github_client.enable_auto_merge(ref, method="merge", expected_head_sha=pull.head_sha)
    assert outcome.kind == "refused"
    assert outcome.message == "Pull request Pull request is in dirty status"


def test_rest_pull_shows_auto_merge_and_labels_as_github_does(fake_github, github_client):
    pull, _ = _pr(fake_github, required_approvals=1)
    fake_github.enable_auto_merge(REPO, pull.number, by="carol", method="REBASE")
    fake_github.add_label(REPO, pull.number, "gastown:hold")
    _, data = github_client._call("GET", f"/repos/{REPO}/pulls/{pull.number}")
    assert data["auto_merge"]["enabled_by"]["login"] == "carol"
    assert data["auto_merge"]["merge_method"] == "rebase"
    assert [label["name"] for label in data["labels"]] == ["gastown:hold"]
