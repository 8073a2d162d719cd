"""Signed, otherwise valid deliveries carrying strings the database cannot store, wrong types
or over-long values answer 400 naming the field, on SQLite and on PostgreSQL (where NUL and
lone surrogates used to raise DataError and UnicodeEncodeError); bodies up to GitHub's 25 MB
cap are accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import DataError, connection, transaction

from gastown.models import WebhookDelivery, WebhookDeliveryStatus
from gastown.webhooks import MAX_BODY_BYTES
from tests.webhooks.test_github_webhooks import (  # noqa: F401 (secret is an autouse fixture)
    URL,
    deliver,
    fixture,
    secret,
    sign,
    watched_mr,
)

pytestmark = pytest.mark.django_db


def payload(name: str = "pull_request.opened") -> dict[str, Any]:
    return json.loads(fixture(name))


def send(client: Any, data: dict[str, Any], event: str = "pull_request", **kwargs: Any) -> Any:
    # json.dumps writes a lone surrogate as the escape "\ud800", as a hostile sender would.
    return deliver(client, event, json.dumps(data).encode(), **kwargs)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[key]
    data[last] = value


@pytest.mark.parametrize("bad", ["acme\x00/web", "acme/\ud800web"])
@pytest.mark.parametrize(
    "field",
    [
        "repository.full_name",  # read and filtered on
        "action",  # stored on the delivery
        "pull_request.body",  # never read
        "sender.login",
    ],
)
def test_a_string_the_database_cannot_store_is_400_naming_it(client, field, bad):
    mr = watched_mr()
    data = payload()
    _set(data, field, bad)
    response = send(client, data)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert WebhookDelivery.objects.count() == 0
    mr.refresh_from_db()
    assert mr.check_requested_at is None


def test_a_bad_string_deep_in_a_list_is_named_by_its_path(client):
    data = payload("check_run.completed")
    data["check_run"]["output"] = {"annotations": [{"message": "ok"}, {"message": "\ud83d"}]}
    response = send(client, data, event="check_run")
    assert response.status_code == 400
    assert response.json()["field"] == "check_run.output.annotations[1].message"


def test_a_bad_key_is_400(client):
    data = payload()
    data["pull_request"]["x\x00y"] = 1
    response = send(client, data)
    assert response.status_code == 400
    assert response.json()["field"] == "pull_request.x\\x00y"


def test_a_surrogate_pair_is_a_valid_character(client):
    watched_mr()
    data = payload()
    data["pull_request"]["body"] = "ship it \U0001f680"  # written as "\ud83d\ude80"
    assert "\\ud83d\\ude80" in json.dumps(data)
    response = send(client, data)
    assert response.status_code == 202, response.content


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", 5),
        ("action", ["opened"]),
        ("action", "x" * 61),
        ("repository.full_name", None),
        ("repository.full_name", ["acme/web"]),
        ("repository.full_name", "a/" + "b" * 199),
        ("pull_request.number", 2.5),
        ("pull_request.number", True),
        ("pull_request.number", 2**31),
        ("repository", "Codertocat/Hello-World"),
        ("pull_request", None),
    ],
)
def test_wrong_types_and_over_long_values_are_400_naming_the_field(client, field, value):
    data = payload()
    _set(data, field, value)
    response = send(client, data)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.parametrize(
    ("event", "name", "field", "value"),
    [
        ("status", "status", "sha", "a" * 65),
        ("status", "status", "sha", 12),
        ("check_run", "check_run.completed", "check_run.head_sha", None),
        ("check_run", "check_run.completed", "check_run.pull_requests", {"number": 2}),
        ("check_suite", "check_suite.completed", "check_suite.pull_requests", "2"),
    ],
)
def test_check_events_name_their_bad_field(client, event, name, field, value):
    data = payload(name)
    _set(data, field, value)
    response = send(client, data, event=event)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_a_bad_pull_request_entry_is_named_by_its_index(client):
    data = payload("check_run.completed")
    data["check_run"]["pull_requests"] = [{"number": 2}, "3"]
    response = send(client, data, event="check_run")
    assert response.json()["field"] == "check_run.pull_requests[1]"
    data["check_run"]["pull_requests"] = [{"number": 2}, {"number": "3"}]
    response = send(client, data, event="check_run", delivery="d-2")
    assert response.json()["field"] == "check_run.pull_requests[1].number"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-GitHub-Event", "pull_request\x00"),
        ("X-GitHub-Event", "x" * 61),
        ("X-GitHub-Delivery", "d\x001"),
        ("X-GitHub-Delivery", "d" * 101),
        ("X-GitHub-Delivery", "d 1"),
    ],
)
def test_bad_headers_are_400_naming_the_header(client, header, value):
    body = fixture("pull_request.opened")
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": sign(body),
        header: value,
    }
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 400
    assert response.json()["field"] == header
    assert WebhookDelivery.objects.count() == 0


def _padded(size: int) -> bytes:
    """The opened-PR example grown to exactly `size` bytes through the PR's body."""
    data = payload()
    data["pull_request"]["body"] = ""
    base = len(json.dumps(data).encode())
    data["pull_request"]["body"] = "x" * (size - base)
    body = json.dumps(data).encode()
    assert len(body) == size
    return body


def test_a_body_of_githubs_25_mb_cap_is_accepted(client, settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < MAX_BODY_BYTES  # other views keep theirs
    mr = watched_mr()
    response = deliver(client, "pull_request", _padded(MAX_BODY_BYTES))
    assert response.status_code == 202, response.content
    assert response.json()["merge_requests"] == 1
    mr.refresh_from_db()
    assert mr.check_requested_at is not None


def test_a_body_over_25_mb_is_413(client):
    response = deliver(client, "pull_request", _padded(MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert WebhookDelivery.objects.count() == 0


def test_a_valid_delivery_still_records_its_action(client):
    watched_mr()
    assert send(client, payload()).status_code == 202
    delivery = WebhookDelivery.objects.get()
    assert (delivery.action, delivery.status) == ("opened", WebhookDeliveryStatus.PROCESSED)


@pytest.mark.postgres
@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b"])
def test_postgresql_itself_refuses_what_the_webhook_now_rejects(bad):
    # Why the check exists: without it, these strings reach the database and fail there.
    assert connection.vendor == "postgresql"
    with pytest.raises((DataError, UnicodeEncodeError, ValueError)), transaction.atomic():
        WebhookDelivery.objects.create(
            delivery_id="raw", event="pull_request", action=bad, status="ignored"
        )
