"""How many approvals a PR still needs: branch protection's or a ruleset's required count,
less the approvals given, through the real client against the fake GitHub over HTTP."""

from scm.graphql import approvals_document, batch_size, charged_points, graphql_cost
from scm.types import PullRequestRef

REPO = "octo/app"


def _snapshot(client, number: int):
    ref = PullRequestRef(REPO, number)
    result = client.fetch_snapshots([ref])[ref]
    assert result.error is None
    return result.snapshot


def _operations(fake_github) -> list[str]:
    return [r.operation for r in fake_github.graphql_requests()]


def test_one_required_approval_is_read_from_the_snapshot_alone(fake_github, github_client):
    fake_github.create_repo(REPO, required_approvals=1)
    pr = fake_github.create_pr(REPO)
    fake_github.request_review(REPO, pr.number, login="alice")
    fake_github.clear_requests()

    snapshot = _snapshot(github_client, pr.number)
    assert (snapshot.approvals_required, snapshot.approvals_missing) == (1, 1)
    assert _operations(fake_github) == ["PullRequestSnapshots"]


def test_two_required_approvals_count_the_ones_given(fake_github, github_client):
    fake_github.create_repo(REPO, required_approvals=2)
    pr = fake_github.create_pr(REPO)
    fake_github.request_review(REPO, pr.number, login="alice")
    fake_github.request_review(REPO, pr.number, login="bob")
    fake_github.approve(REPO, pr.number, by="carol")
    fake_github.clear_requests()

    snapshot = _snapshot(github_client, pr.number)
    assert snapshot.review_decision == "REVIEW_REQUIRED"
    assert (snapshot.approvals_required, snapshot.approvals_missing) == (2, 1)
    assert _operations(fake_github) == ["PullRequestSnapshots", "PullRequestApprovals"]

    fake_github.approve(REPO, pr.number, by="alice")
    fake_github.clear_requests()
    approved = _snapshot(github_client, pr.number)
    assert approved.review_decision == "APPROVED"
    assert approved.approvals_missing == 0
    assert _operations(fake_github) == ["PullRequestSnapshots"]  # nothing left to count


def test_a_change_request_is_not_an_approval(fake_github, github_client):
    fake_github.create_repo(REPO, required_approvals=2)
    pr = fake_github.create_pr(REPO)
    fake_github.approve(REPO, pr.number, by="carol")
    fake_github.request_changes(REPO, pr.number, by="carol", body="")
    fake_github.approve(REPO, pr.number, by="dave")
    fake_github.approve(REPO, pr.number, by="dave")  # one person, one approval
    snapshot = _snapshot(github_client, pr.number)
    assert snapshot.review_decision == "CHANGES_REQUESTED"
    assert snapshot.approvals_missing is None  # it waits on changes, not on a count


def test_a_rulesets_required_count_is_read_from_the_rules_on_the_base(fake_github, github_client):
    fake_github.create_repo(REPO, required_approvals=3, rulesets=True)
    pr = fake_github.create_pr(REPO)
    fake_github.approve(REPO, pr.number, by="carol")
    snapshot = _snapshot(github_client, pr.number)
    assert (snapshot.approvals_required, snapshot.approvals_missing) == (3, 2)


def test_a_count_github_does_not_show_degrades_to_unknown(fake_github, github_client):
    """A token that may not read the branch's protection sees no count: the PR still waits
    on a human, only the number is not known."""
    fake_github.create_repo(REPO, required_approvals=2, protection_visible=False)
    pr = fake_github.create_pr(REPO)
    snapshot = _snapshot(github_client, pr.number)
    assert snapshot.review_decision == "REVIEW_REQUIRED"
    assert (snapshot.approvals_required, snapshot.approvals_missing) == (None, None)


def test_code_owner_review_alone_has_no_count(fake_github, github_client):
    fake_github.create_repo(REPO, require_code_owner_review=True, code_owners={"alice"})
    pr = fake_github.create_pr(REPO)
    snapshot = _snapshot(github_client, pr.number)
    assert snapshot.review_decision == "REVIEW_REQUIRED"
    assert snapshot.requested_reviewers == ("alice",)
    assert snapshot.approvals_missing is None


def test_the_approvals_document_is_asked_only_for_prs_whose_count_is_open(
    fake_github, github_client
):
    fake_github.create_repo(REPO, required_approvals=2)
    waiting = [fake_github.create_pr(REPO) for _ in range(3)]
    fake_github.approve(REPO, waiting[0].number, by="a")
    fake_github.approve(REPO, waiting[0].number, by="b")
    refs = [PullRequestRef(REPO, p.number) for p in waiting]
    fake_github.clear_requests()
    results = github_client.fetch_snapshots(refs)
    assert [results[r].snapshot.approvals_missing for r in refs] == [0, 2, 2]
    snapshots, approvals = fake_github.graphql_requests()
    assert (snapshots.aliases, approvals.aliases) == (3, 2)


def test_the_approvals_document_costs_one_point_per_batch():
    refs = [PullRequestRef("octo/app", n) for n in range(1, batch_size(approvals_document) + 1)]
    document = approvals_document(refs)
    assert charged_points(graphql_cost(document.query)) == 1
