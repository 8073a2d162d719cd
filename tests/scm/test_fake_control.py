"""The fake's control API (for other processes) and the management commands around it."""

import json
import urllib.request
from io import StringIO

from django.core.management import call_command

from scm.blocker import Blocker, derive_blocker
from scm.types import PullRequestRef


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_another_process_can_set_up_and_drive_a_pr_over_http(fake_github, github_client):
    base = f"{fake_github.url}/_fake"
    _post(
        f"{base}/repos", {"repo": "octo/demo", "required_approvals": 1, "required_checks": ["ci"]}
    )
    created = _post(f"{base}/repos/octo/demo/pulls", {"head": "agent-1", "title": "Agent work"})
    number = created["number"]
    _post(f"{base}/pulls/octo/demo/{number}/checks", {"name": "ci", "conclusion": "success"})
    state = _post(f"{base}/pulls/octo/demo/{number}/approve", {"by": "alice"})

    assert state["review_decision"] == "APPROVED"
    ref = PullRequestRef("octo/demo", number)
    snapshot = github_client.fetch_snapshots([ref])[ref].snapshot
    assert derive_blocker(snapshot) == Blocker.READY


def test_faults_and_request_log_over_http(fake_github, github_client):
    fake_github.create_repo("octo/demo")
    pull = fake_github.create_pr("octo/demo")
    _post(
        f"{fake_github.url}/_fake/faults",
        {"kind": "status", "status": 500, "path": "/graphql", "times": 2},
    )
    ref = PullRequestRef("octo/demo", pull.number)
    assert github_client.fetch_snapshots([ref])[ref].error.kind == "transient"

    with urllib.request.urlopen(f"{fake_github.url}/_fake/requests", timeout=5) as response:
        log = json.loads(response.read())
    assert [(r["method"], r["path"], r["status"]) for r in log] == [("POST", "/graphql", 500)] * 2


def test_fake_review_command_approves_and_requests_changes(fake_github, github_client):
    fake_github.create_repo("octo/demo", required_approvals=1)
    pull = fake_github.create_pr("octo/demo")
    ref = PullRequestRef("octo/demo", pull.number)
    out = StringIO()

    call_command("fake_review", pr=ref.url, approve=True, fake_url=fake_github.url, stdout=out)
    assert "APPROVED" in out.getvalue()
    call_command(
        "fake_review",
        pr=ref.url,
        request_changes=True,
        by="bob",
        fake_url=fake_github.url,
        stdout=out,
    )
    snapshot = github_client.fetch_snapshots([ref])[ref].snapshot
    assert derive_blocker(snapshot) == Blocker.CHANGES_REQUESTED


def test_fake_review_command_finds_the_fake_through_github_api_url(
    fake_github, github_client, settings
):
    settings.GITHUB_API_URL = fake_github.url
    fake_github.create_repo("octo/demo", required_approvals=1)
    ref = PullRequestRef("octo/demo", fake_github.create_pr("octo/demo").number)

    call_command("fake_review", pr=ref.url, approve=True, stdout=StringIO())

    snapshot = github_client.fetch_snapshots([ref])[ref].snapshot
    assert snapshot.review_decision == "APPROVED"


def test_code_owners_are_asked_for_a_review_when_a_pr_opens(fake_github, github_client):
    fake_github.create_repo("octo/demo", required_approvals=1, code_owners={"alice", "bob"})
    ref = PullRequestRef("octo/demo", fake_github.create_pr("octo/demo").number)

    snapshot = github_client.fetch_snapshots([ref])[ref].snapshot
    assert sorted(snapshot.requested_reviewers) == ["alice", "bob"]
    fake_github.approve("octo/demo", ref.number, by="alice")
    snapshot = github_client.fetch_snapshots([ref])[ref].snapshot
    assert list(snapshot.requested_reviewers) == ["bob"]


def test_bench_reports_requests_points_and_the_rest_ratio():
    out = StringIO()
    call_command("bench_scm", prs=60, stdout=out)
    text = out.getvalue()
    assert "GraphQL (ours):            2 requests" in text
    assert "REST baseline (per PR):    240 requests" in text
    assert "Ratio:" in text


def test_branch_protection_can_cover_the_default_branch_only(fake_github, github_client):
    _post(
        f"{fake_github.url}/_fake/repos",
        {
            "repo": "octo/demo",
            "required_approvals": 1,
            "required_checks": ["ci"],
            "protected_branches": ["main"],
        },
    )
    fake_github.create_branch("octo/demo", "convoy/1")
    into_main = fake_github.create_pr("octo/demo", head="convoy/1", base="main")
    into_feature = fake_github.create_pr("octo/demo", head="agent-1", base="convoy/1")
    refs = [PullRequestRef("octo/demo", p.number) for p in (into_main, into_feature)]
    snapshots = {
        ref: result.snapshot for ref, result in github_client.fetch_snapshots(refs).items()
    }

    assert derive_blocker(snapshots[refs[0]]) == Blocker.HUMAN_REVIEW
    assert derive_blocker(snapshots[refs[1]]) == Blocker.READY
    outcome = github_client.merge(refs[1], head_sha=snapshots[refs[1]].head_sha, methods=["squash"])
    assert outcome.kind == "merged"
