"""Every error kind, provoked through the fake's faults, with the real client over HTTP."""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from scm.client import GitHubClient
from scm.credentials import resolve_token
from scm.errors import CredentialError
from scm.types import PullRequestRef

REPO = "octo/app"


@pytest.fixture
def prs(fake_github):
    fake_github.create_repo(REPO)
    return [PullRequestRef(REPO, fake_github.create_pr(REPO).number) for _ in range(3)]


def test_missing_pr_fails_only_itself_in_a_batch_of_30(fake_github, github_client):
    fake_github.create_repo(REPO)
    refs = [PullRequestRef(REPO, fake_github.create_pr(REPO).number) for _ in range(29)]
    missing = PullRequestRef(REPO, 999)
    results = github_client.fetch_snapshots([*refs[:10], missing, *refs[10:]])

    assert len(fake_github.graphql_requests()) == 1
    assert results[missing].error is not None
    assert results[missing].error.kind == "not_found"
    assert "https://github.com/octo/app/pull/999" in results[missing].error.message
    assert all(results[ref].snapshot is not None for ref in refs)


def test_missing_repository_fails_only_its_prs(fake_github, github_client, prs):
    gone = PullRequestRef("octo/deleted", 1)
    results = github_client.fetch_snapshots([*prs, gone])
    assert results[gone].error.kind == "not_found"
    assert all(results[ref].ok for ref in prs)


def test_graphql_error_entry_for_one_alias_affects_only_that_pr(fake_github, github_client, prs):
    fake_github.add_fault(
        "graphql_errors", path="/graphql", aliases=["pr1"], error_type="NOT_FOUND"
    )
    results = github_client.fetch_snapshots(prs)
    assert results[prs[1]].error.kind == "not_found"
    assert results[prs[0]].ok and results[prs[2]].ok


def test_graphql_internal_error_for_every_pr_is_transient(fake_github, github_client, prs):
    fake_github.add_fault("graphql_errors", path="/graphql", error_type="INTERNAL")
    results = github_client.fetch_snapshots(prs)
    assert {r.error.kind for r in results.values()} == {"transient"}


def test_graphql_time_out_without_data_is_transient(fake_github, github_client, prs):
    fake_github.add_fault("graphql_timeout", path="/graphql")
    results = github_client.fetch_snapshots(prs)
    assert {r.error.kind for r in results.values()} == {"transient"}
    assert "timeout" in results[prs[0]].error.message


def test_401_is_a_town_level_unauthorized(fake_github, github_client, prs):
    fake_github.tokens = {"another-token"}
    with pytest.raises(CredentialError) as caught:
        github_client.fetch_snapshots(prs)
    assert caught.value.kind == "unauthorized"
    assert caught.value.source == "GITHUB_TOKEN"
    assert "GITHUB_TOKEN" in caught.value.message


def test_403_names_the_missing_permission(fake_github, github_client, prs):
    fake_github.add_fault("forbidden", path="/graphql", permission="pull_requests=read")
    with pytest.raises(CredentialError) as caught:
        github_client.fetch_snapshots(prs)
    assert caught.value.kind == "forbidden"
    assert caught.value.permission == "pull_requests=read"
    assert "pull_requests=read" in caught.value.message


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limit_raises_with_reset_time_and_then_makes_no_call(
    fake_github, github_client, prs, status
):
    fake_github.add_fault("rate_limit", path="/graphql", status=status, reset_in=120)
    with pytest.raises(CredentialError) as caught:
        github_client.fetch_snapshots(prs)
    assert caught.value.kind == "rate_limited"
    assert caught.value.reset_at is not None
    assert caught.value.reset_at > datetime.now(UTC)

    calls = len(fake_github.requests)
    with pytest.raises(CredentialError) as held:
        github_client.fetch_snapshots(prs)
    assert len(fake_github.requests) == calls  # waits for the reset without asking
    assert not held.value.secondary
    assert "hourly graphql rate limit" in held.value.message


def test_spent_graphql_budget_stops_further_calls(fake_github, github_client, prs):
    fake_github.graphql_remaining = 1
    github_client.fetch_snapshots(prs)  # costs the last point
    assert github_client.rate_limit.budget("graphql").remaining == 0
    with pytest.raises(CredentialError) as caught:
        github_client.fetch_snapshots(prs)
    assert caught.value.kind == "rate_limited"
    assert len(fake_github.graphql_requests()) == 1


def test_malformed_json_is_invalid_response_per_pr(fake_github, github_client, prs):
    fake_github.add_fault("malformed", path="/graphql", times=2)
    results = github_client.fetch_snapshots(prs)
    assert {r.error.kind for r in results.values()} == {"invalid_response"}


@pytest.mark.parametrize("status", [500, 502])
def test_server_errors_are_transient(fake_github, github_client, prs, status):
    fake_github.add_fault("status", status=status, path="/graphql", times=2)
    results = github_client.fetch_snapshots(prs)
    assert {r.error.kind for r in results.values()} == {"transient"}
    assert len(fake_github.graphql_requests()) == 2  # asked again once, then given up


def test_one_failed_answer_is_asked_again_once(fake_github, github_client, prs):
    # GitHub's moment, not an outage: the read is repeated and its answer kept.
    fake_github.add_fault("status", status=502, path="/graphql", times=1)
    results = github_client.fetch_snapshots(prs)
    assert all(r.snapshot is not None and r.error is None for r in results.values())
    assert len(fake_github.graphql_requests()) == 2


def test_timeout_is_transient(fake_github, prs):
    client = GitHubClient(resolve_token(None), api_url=fake_github.url, timeout=0.2)
    fake_github.add_fault("slow", path="/graphql", delay=0.6, times=2)
    results = client.fetch_snapshots(prs)
    assert {r.error.kind for r in results.values()} == {"transient"}


def test_connection_refused_is_transient(fake_github, prs):
    client = GitHubClient(resolve_token(None), api_url="http://127.0.0.1:9", timeout=1)
    results = client.fetch_snapshots(prs)
    assert {r.error.kind for r in results.values()} == {"transient"}


def test_token_never_appears_in_errors_or_logs(fake_github, prs, caplog):
    secret = "ghp_thisMustNeverLeak123"
    client = GitHubClient(resolve_token(secret), api_url=fake_github.url, timeout=2)
    fake_github.tokens = {"something-else"}
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(CredentialError) as caught:
            client.fetch_snapshots(prs)
        fake_github.tokens = None
        fake_github.add_fault("status", status=502, method="PUT")
        outcome = client.merge(prs[0], head_sha="x", methods=["merge"])
    texts = [
        str(caught.value),
        repr(caught.value),
        caught.value.message,
        repr(client),
        str(outcome),
        caplog.text,
    ]
    assert caplog.records  # PyGithub's debug log did run
    assert all(secret not in text for text in texts)


@pytest.mark.parametrize(
    "bad",
    [
        PullRequestRef(REPO, 2**31),
        PullRequestRef(REPO, 0),
        PullRequestRef("no-slash", 1),
        PullRequestRef("octo/..", 1),
        PullRequestRef("octo/app/extra", 1),
    ],
)
def test_bad_ref_is_its_own_error_and_the_batch_is_still_asked(
    fake_github, github_client, prs, bad
):
    results = github_client.fetch_snapshots([prs[0], bad, *prs[1:]])
    assert results[bad].error.kind == "unrecognized_url"
    assert all(results[ref].ok for ref in prs)
    assert [r.aliases for r in fake_github.graphql_requests()] == [3]


def test_variable_github_rejects_fails_only_its_pr(fake_github, github_client, prs, monkeypatch):
    # Should a value pass our own check but not GitHub's (here: a number past GraphQL's
    # Int), GitHub answers with no data at all; the error names the variable, so only that
    # PR is blamed and the rest of the batch is asked again.
    monkeypatch.setattr("scm.client.ref_problem", lambda ref: None)
    bad = PullRequestRef(REPO, 2**31)
    results = github_client.fetch_snapshots([prs[0], bad, *prs[1:]])
    assert results[bad].error.kind == "unrecognized_url"
    assert all(results[ref].ok for ref in prs)
    assert [r.aliases for r in fake_github.graphql_requests()] == [4, 3]


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_rate_limit_waits_retry_after_not_the_hourly_reset(
    fake_github, github_client, prs, status
):
    fake_github.add_fault("rate_limit", path="/graphql", status=status, retry_after=30)
    before = datetime.now(UTC)
    with pytest.raises(CredentialError) as caught:
        github_client.fetch_snapshots(prs)
    assert caught.value.kind == "rate_limited"
    assert caught.value.secondary
    assert "secondary rate limit" in caught.value.message
    assert "spent" not in caught.value.message
    assert before + timedelta(seconds=25) <= caught.value.reset_at
    assert caught.value.reset_at <= datetime.now(UTC) + timedelta(seconds=35)

    calls = len(fake_github.requests)
    with pytest.raises(CredentialError) as held:
        github_client.fetch_snapshots(prs)
    assert len(fake_github.requests) == calls  # held for Retry-After without asking
    assert "secondary rate limit" in held.value.message


def test_secondary_rate_limit_without_retry_after_waits_a_minute_not_the_hourly_reset():
    from github import GithubException

    from scm.github_errors import translate

    hourly_reset = int(datetime.now(UTC).timestamp()) + 3000
    error = GithubException(
        403,
        {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
        headers={"x-ratelimit-remaining": "4321", "x-ratelimit-reset": str(hourly_reset)},
    )
    translated = translate(error, source="GITHUB_TOKEN")
    assert translated.kind == "rate_limited"
    assert translated.secondary
    assert "secondary rate limit" in translated.message
    assert "4321 left" in translated.message
    assert translated.reset_at <= datetime.now(UTC) + timedelta(seconds=61)

    spent = GithubException(
        403,
        {"message": "API rate limit exceeded for user ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(hourly_reset)},
    )
    assert translate(spent).reset_at == datetime.fromtimestamp(hourly_reset, UTC)
    assert not translate(spent).secondary
    assert "hourly rate limit" in translate(spent).message


def test_spent_graphql_budget_does_not_refuse_a_rest_merge(fake_github, github_client, prs):
    fake_github.graphql_remaining = 1
    github_client.fetch_snapshots(prs)  # costs the last GraphQL point
    with pytest.raises(CredentialError):
        github_client.fetch_snapshots(prs)

    head_sha = fake_github.pull(REPO, prs[0].number).head_sha
    outcome = github_client.merge(prs[0], head_sha=head_sha, methods=["merge"])
    assert outcome.kind == "merged"


def test_spent_rest_budget_does_not_refuse_graphql_snapshots(fake_github, github_client, prs):
    fake_github.core_remaining = 1
    head_sha = fake_github.pull(REPO, prs[0].number).head_sha
    github_client.merge(prs[0], head_sha=head_sha, methods=["merge"])  # the last REST call
    with pytest.raises(CredentialError) as caught:
        github_client.create_branch(REPO, branch="x", from_branch="main")
    assert caught.value.kind == "rate_limited"

    results = github_client.fetch_snapshots(prs[1:])
    assert all(result.ok for result in results.values())


def test_graphql_forbidden_for_one_pr_is_a_credential_error_for_that_pr(
    fake_github, github_client, prs
):
    # e.g. an organization enforcing SAML SSO the token is not authorized for.
    fake_github.add_fault(
        "graphql_errors", path="/graphql", aliases=["pr1"], error_type="FORBIDDEN"
    )
    results = github_client.fetch_snapshots(prs)
    error = results[prs[1]].error
    assert isinstance(error, CredentialError)
    assert error.kind == "forbidden"
    assert error.source == "GITHUB_TOKEN"
    assert "Injected FORBIDDEN for pr1" in error.message
    assert results[prs[0]].ok and results[prs[2]].ok
