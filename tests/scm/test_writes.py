"""Opening PRs, creating branches and updating branches: idempotent, through the fake."""

import pytest

from scm.errors import ScmError
from scm.types import PullRequestRef
from tests.processes import wait_for

REPO = "octo/app"


def test_open_pull_request_is_idempotent(fake_github, github_client):
    fake_github.create_repo(REPO)
    fake_github.create_branch(REPO, "convoy-1")

    first = github_client.open_pull_request(
        REPO, head="convoy-1", base="main", title="Land convoy 1"
    )
    again = github_client.open_pull_request(
        REPO, head="convoy-1", base="main", title="Land convoy 1"
    )

    assert first == again
    assert first.url == f"https://github.com/{REPO}/pull/{first.number}"
    assert len(fake_github.state.repo(REPO).pulls) == 1
    assert fake_github.pull(REPO, first.number).title == "Land convoy 1"


def test_open_pull_request_adopts_a_pr_opened_by_someone_else(fake_github, github_client):
    fake_github.create_repo(REPO)
    existing = fake_github.create_pr(REPO, head="convoy-2", base="main")
    ref = github_client.open_pull_request(REPO, head="convoy-2", base="main", title="x")
    assert ref == PullRequestRef(REPO, existing.number)


def test_closed_pr_for_same_head_does_not_prevent_a_new_one(fake_github, github_client):
    fake_github.create_repo(REPO)
    old = fake_github.create_pr(REPO, head="convoy-3")
    fake_github.close(REPO, old.number)
    ref = github_client.open_pull_request(REPO, head="convoy-3", base="main", title="again")
    assert ref.number != old.number


def test_create_branch_is_idempotent(fake_github, github_client):
    fake_github.create_repo(REPO)
    assert github_client.create_branch(REPO, branch="convoy-4", from_branch="main") is True
    assert github_client.create_branch(REPO, branch="convoy-4", from_branch="main") is False
    assert fake_github.branch_sha(REPO, "convoy-4") == fake_github.branch_sha(REPO, "main")


def test_create_branch_from_missing_branch_is_not_found(fake_github, github_client):
    import pytest

    from scm.errors import ScmError

    fake_github.create_repo(REPO)
    with pytest.raises(ScmError) as caught:
        github_client.create_branch(REPO, branch="x", from_branch="nope")
    assert caught.value.kind == "not_found"


def test_update_branch_brings_a_behind_pr_up_to_date(fake_github, github_client):
    fake_github.create_repo(REPO)
    pull = fake_github.create_pr(REPO)
    fake_github.set_pr(REPO, pull.number, behind=True)
    ref = PullRequestRef(REPO, pull.number)
    old_head = pull.head_sha

    assert github_client.update_branch(ref, head_sha=old_head) is True
    assert fake_github.pull(REPO, pull.number).behind is False
    assert fake_github.pull(REPO, pull.number).head_sha != old_head
    assert github_client.update_branch(ref, head_sha=old_head) is False  # head moved since


@pytest.mark.parametrize("value", [None, "seven", {"n": 7}])
def test_opened_pr_answer_without_a_number_is_invalid_response(fake_github, github_client, value):
    fake_github.create_repo(REPO)
    fake_github.create_branch(REPO, "convoy-9")
    fake_github.add_fault(
        "rewrite_enum", method="POST", path=r"/pulls$", field="number", value=value
    )
    with pytest.raises(ScmError) as caught:
        github_client.open_pull_request(REPO, head="convoy-9", base="main", title="x")
    assert caught.value.kind == "invalid_response"


@pytest.mark.parametrize(
    ("field", "value"), [("number", None), ("number", "seven"), ("head", "convoy-9")]
)
def test_listed_pr_with_an_odd_shape_is_invalid_response(fake_github, github_client, field, value):
    fake_github.create_repo(REPO)
    fake_github.create_pr(REPO, head="convoy-9", base="main")
    fake_github.add_fault("rewrite_enum", method="GET", path=r"/pulls$", field=field, value=value)
    with pytest.raises(ScmError) as caught:
        github_client.open_pull_request(REPO, head="convoy-9", base="main", title="x")
    assert caught.value.kind == "invalid_response"


@pytest.mark.parametrize(("field", "value"), [("object", None), ("sha", None), ("object", [])])
def test_branch_answer_with_an_odd_shape_is_invalid_response(
    fake_github, github_client, field, value
):
    fake_github.create_repo(REPO)
    fake_github.add_fault(
        "rewrite_enum", method="GET", path=r"/git/ref/heads/", field=field, value=value, times=None
    )
    with pytest.raises(ScmError) as caught:
        github_client.create_branch(REPO, branch="convoy-10", from_branch="main")
    assert caught.value.kind == "invalid_response"


def test_open_prs_are_listed_by_head_owner_and_branch_and_base(fake_github, github_client):
    fake_github.create_repo(REPO)
    fake_github.create_branch(REPO, "release")
    wanted = fake_github.create_pr(REPO, head="convoy-5", base="main")
    fake_github.create_pr(REPO, head="convoy-5", base="release")
    fake_github.create_pr(REPO, head="convoy-6", base="main")

    def listed(**query):
        _, pulls = github_client._call("GET", f"/repos/{REPO}/pulls", parameters=query)
        return [pull["number"] for pull in pulls]

    assert listed(state="open", head="octo:convoy-5", base="main") == [wanted.number]
    # Another owner's branch of the same name (a fork's) is not this PR's head.
    assert listed(state="open", head="someone-else:convoy-5", base="main") == []
    fake_github.close(REPO, wanted.number)
    assert listed(state="open", head="octo:convoy-5", base="main") == []


def test_a_hold_fault_performs_the_request_and_withholds_the_answer(fake_github):
    from scm.client import GitHubClient
    from scm.credentials import resolve_token

    fake_github.create_repo(REPO)
    fake_github.create_branch(REPO, "convoy-7")
    fake_github.add_fault("hold", method="POST", path=r"/pulls$")
    impatient = GitHubClient(resolve_token(None), api_url=fake_github.url, timeout=0.3)
    with pytest.raises(ScmError) as raised:
        impatient.open_pull_request(REPO, head="convoy-7", base="main", title="x")
    assert raised.value.kind == "transient"
    # GitHub opened it; the answer is still held.
    assert [p.head for p in fake_github.state.repo(REPO).pulls.values()] == ["convoy-7"]
    (held,) = fake_github.held_requests()
    assert (held.method, held.status) == ("POST", 0)
    fake_github.clear_faults()  # the held answer goes out
    wait_for(lambda: held.status == 201, seconds=5, what="the held answer")
    assert fake_github.held_requests() == []
    # The repeat adopts the PR the lost answer was about.
    ref = impatient.open_pull_request(REPO, head="convoy-7", base="main", title="x")
    assert ref.number == 1 and len(fake_github.state.repo(REPO).pulls) == 1
