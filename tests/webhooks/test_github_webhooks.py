"""GitHub webhooks at /webhooks/github, fed GitHub's own example payloads
(tests/fixtures/webhooks, from @octokit/webhooks-examples)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path
from unittest import mock

import pytest

from beads.models import BeadStatus, MergeRequest
from gastown.models import (
    WebhookDelivery,
    WebhookDeliveryStatus,
)
from tests.factories import ConvoyFactory, MergeRequestFactory, RigFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
SECRET = "It's a Secret to Everybody"
URL = "/webhooks/github"
# The examples' repository, PR number and head SHA.
REPO = "Codertocat/Hello-World"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
STATUS_SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


@pytest.fixture(autouse=True)
def secret(settings):
    settings.GITHUB_WEBHOOK_SECRET = SECRET


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(client, event: str, body: bytes, *, delivery: str = "d-1", signature=None):
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if signature is not False:
        headers["X-Hub-Signature-256"] = signature or sign(body)
    return client.post(URL, body, content_type="application/json", headers=headers)


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def watched_mr(number: int = 2, head_sha: str = "", repo: str = REPO, **kwargs):
    rig = RigFactory(repo=repo)
    return MergeRequestFactory(
        bead__town=rig.town,
        bead__rig=rig,
        pr_url=f"https://github.com/{repo}/pull/{number}",
        head_sha=head_sha,
        **kwargs,
    )


def test_github_documents_this_signature():
    # The example from GitHub's "Validating webhook deliveries" page.
    assert (
        sign(b"Hello, World!")
        == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


@pytest.mark.parametrize(
    "event,name",
    [
        ("pull_request", "pull_request.opened"),
        ("pull_request", "pull_request.closed"),
        ("pull_request_review", "pull_request_review.submitted"),
        ("pull_request_review_thread", "pull_request_review_thread.resolved"),
        ("check_suite", "check_suite.completed"),
        ("check_run", "check_run.completed"),
    ],
)
def test_pr_events_make_the_mr_due_at_once(
    client, event, name, settings, django_capture_on_commit_callbacks
):
    mr = watched_mr()
    unrelated = watched_mr(number=3)
    settings.GASTOWN_ENQUEUE_TASKS = True
    with (
        mock.patch("gastown.scheduling._enqueue") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = deliver(client, event, fixture(name))
    assert response.status_code == 202, response.content
    assert response.json()["merge_requests"] == 1
    mr.refresh_from_db()
    unrelated.refresh_from_db()
    assert mr.check_requested_at is not None
    assert unrelated.check_requested_at is None
    enqueue.assert_called_once_with("gastown.tasks.check_prs_task", mr.bead.town_id)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.repo) == (WebhookDeliveryStatus.PROCESSED, REPO)


def test_check_suite_without_pr_numbers_finds_the_mr_by_head_sha(client):
    mr = watched_mr(number=40, head_sha="f95f852bd8fca8fcc58a9a2d6c842781e32a215e")
    response = deliver(client, "check_suite", fixture("check_suite.requested"))
    assert response.json()["merge_requests"] == 1
    mr.refresh_from_db()
    assert mr.check_requested_at is not None


def test_status_event_finds_the_mr_by_head_sha(client):
    mr = watched_mr(number=41, head_sha=STATUS_SHA)
    response = deliver(client, "status", fixture("status"))
    assert response.status_code == 202
    mr.refresh_from_db()
    assert mr.check_requested_at is not None


def test_a_pr_in_another_repository_with_the_same_number_is_untouched(client):
    mr = watched_mr(repo="acme/web")
    deliver(client, "pull_request", fixture("pull_request.opened"))
    mr.refresh_from_db()
    assert mr.check_requested_at is None


def test_terminal_mrs_are_not_made_due(client):
    mr = watched_mr()
    MergeRequest.objects.filter(pk=mr.pk).update(state="failed")
    mr.bead.status = BeadStatus.FAILED
    mr.bead.save()
    response = deliver(client, "pull_request", fixture("pull_request.closed"))
    assert response.json()["merge_requests"] == 0
    mr.refresh_from_db()
    assert mr.check_requested_at is None


def test_a_failed_landing_mr_holding_a_suppression_is_still_watched(client):
    mr = watched_mr()
    MergeRequest.objects.filter(pk=mr.pk).update(state="failed")
    ConvoyFactory(
        town=mr.bead.town,
        respawn_suppressed_since="2026-03-01T00:00:00Z",
        suppressed_landing_mr=mr,
    )
    response = deliver(client, "pull_request_review", fixture("pull_request_review.submitted"))
    assert response.json()["merge_requests"] == 1


def test_a_redelivered_id_is_processed_once(client):
    mr = watched_mr()
    body = fixture("pull_request.opened")
    assert deliver(client, "pull_request", body, delivery="same").status_code == 202
    MergeRequest.objects.filter(pk=mr.pk).update(check_requested_at=None)
    again = deliver(client, "pull_request", body, delivery="same")
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    mr.refresh_from_db()
    assert mr.check_requested_at is None  # the replay changed nothing
    assert WebhookDelivery.objects.count() == 1


def test_a_bad_signature_is_refused_and_logged(client, caplog):
    watched_mr()
    body = fixture("pull_request.opened")
    with caplog.at_level(logging.WARNING, logger="gastown.webhooks"):
        response = deliver(client, "pull_request", body, signature=sign(body, "wrong"))
    assert response.status_code == 403
    assert "signature" in caplog.text
    assert WebhookDelivery.objects.count() == 0


def test_a_body_changed_after_signing_is_refused(client):
    body = fixture("pull_request.opened")
    response = deliver(client, "pull_request", body + b" ", signature=sign(body))
    assert response.status_code == 403


def test_a_missing_signature_is_refused(client, caplog):
    with caplog.at_level(logging.WARNING, logger="gastown.webhooks"):
        response = deliver(client, "ping", fixture("ping"), signature=False)
    assert response.status_code == 401
    assert "X-Hub-Signature-256" in caplog.text


def test_without_a_secret_everything_is_refused(client, settings):
    settings.GITHUB_WEBHOOK_SECRET = ""
    body = fixture("pull_request.opened")
    response = deliver(client, "pull_request", body, signature=sign(body, ""))
    assert response.status_code == 503
    assert "GITHUB_WEBHOOK_SECRET" in response.json()["error"]


def test_ping_is_acknowledged(client):
    response = deliver(client, "ping", fixture("ping"))
    assert response.status_code == 200
    assert response.json()["status"] == "pong"


def test_an_unknown_event_is_acknowledged_and_ignored(client):
    watched_mr()
    response = deliver(client, "issues", fixture("issues.edited"))
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert WebhookDelivery.objects.get().status == WebhookDeliveryStatus.IGNORED


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        json.dumps({"repository": "x"}).encode(),
        json.dumps({"repository": {"full_name": REPO}, "pull_request": {"number": "2"}}).encode(),
        json.dumps({"repository": {"full_name": REPO}, "pull_request": {"number": -1}}).encode(),
        json.dumps({"repository": {"full_name": REPO}}).encode(),
        b"[" * 100_000,
    ],
)
def test_garbage_payloads_are_400_never_500(client, body):
    response = deliver(client, "pull_request", body, delivery="garbage")
    assert response.status_code == 400
    assert WebhookDelivery.objects.count() == 0


def test_check_run_garbage_in_pull_requests_is_400(client):
    payload = json.loads(fixture("check_run.completed"))
    payload["check_run"]["pull_requests"] = [{"number": None}]
    assert deliver(client, "check_run", json.dumps(payload).encode()).status_code == 400


def test_missing_delivery_header_is_400(client):
    body = fixture("ping")
    response = client.post(
        URL,
        body,
        content_type="application/json",
        headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(body)},
    )
    assert response.status_code == 400


def test_form_encoded_deliveries_are_understood(client):
    from urllib.parse import urlencode

    mr = watched_mr()
    body = urlencode({"payload": fixture("pull_request.opened").decode()}).encode()
    response = client.post(
        URL,
        body,
        content_type="application/x-www-form-urlencoded",
        headers={
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": "form-1",
            "X-Hub-Signature-256": sign(body),
        },
    )
    assert response.status_code == 202
    mr.refresh_from_db()
    assert mr.check_requested_at is not None


def test_get_is_405(client):
    assert client.get(URL).status_code == 405


def _merge_group(number: int, *, action: str = "destroyed") -> bytes:
    payload = {
        "action": action,
        "merge_group": {
            "head_sha": "a" * 40,
            "head_ref": f"refs/heads/gh-readonly-queue/main/pr-{number}-{'b' * 40}",
            "base_sha": "b" * 40,
            "base_ref": "refs/heads/main",
        },
        "repository": {"full_name": REPO},
        "sender": {"login": "github-merge-queue[bot]"},
    }
    if action == "destroyed":
        payload["reason"] = "invalidated"
    return json.dumps(payload).encode()


def test_merge_group_event_makes_its_pr_due(client):
    mr, other = watched_mr(number=7), watched_mr(number=8)
    response = deliver(client, "merge_group", _merge_group(7))
    assert response.status_code == 202
    assert response.json()["merge_requests"] == 1
    mr.refresh_from_db()
    other.refresh_from_db()
    assert mr.check_requested_at is not None and other.check_requested_at is None


def test_merge_group_event_without_a_pr_in_its_branch_is_refused(client):
    body = json.loads(_merge_group(7))
    body["merge_group"]["head_ref"] = "refs/heads/main"
    response = deliver(client, "merge_group", json.dumps(body).encode())
    assert response.status_code == 400
    assert response.json()["field"] == "merge_group.head_ref"
    assert not WebhookDelivery.objects.exists()
