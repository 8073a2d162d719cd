"""Strings the database cannot store, wrong types and over-long values in API bodies and query
strings answer 400 naming the field on SQLite and PostgreSQL, and write nothing."""

from __future__ import annotations

from typing import Any

import pytest

from beads.models import Bead, BeadStatus, MergeRequest
from gastown.models import AgentRole, Convoy
from tests.factories import AgentFactory, BeadFactory

pytestmark = pytest.mark.django_db

BAD_STRINGS = ["a\x00b", "a\ud800b", "\udfff"]


@pytest.fixture
def agent(rig):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
    agent = AgentFactory(town=rig.town, rig=rig, name="cat", hooked_bead=bead)
    Bead.objects.filter(pk=bead.pk).update(assignee=agent)
    return agent


def _writes() -> tuple[int, ...]:
    return Bead.objects.count(), Convoy.objects.count(), MergeRequest.objects.count()


# (path, body with BAD where the bad string goes, the field named in the answer)
CASES: list[tuple[str, Any, str]] = [
    ("/beads", {"title": "BAD"}, "title"),
    ("/beads", {"title": "t", "body": "BAD"}, "body"),
    ("/beads", {"title": "t", "labels": ["ok", "BAD"]}, "labels[1]"),
    ("/beads", {"title": "t", "rig": "BAD"}, "rig"),
    ("/beads", {"title": "t", "unknown": {"deep": ["BAD"]}}, "unknown.deep[0]"),
    ("/convoys", {"title": "BAD"}, "title"),
    ("/convoys", {"title": "c", "beads": [{"title": "t"}, {"title": "BAD"}]}, "beads[1].title"),
    (
        "/convoys",
        {"title": "c", "beads": [{"title": "t", "labels": ["BAD"]}]},
        "beads[0].labels[0]",
    ),
    ("/agents/cat/done", {"bead": 1, "branch": "BAD"}, "branch"),
    ("/agents/cat/done", {"bead": 1, "branch": "b", "pr_url": "BAD"}, "pr_url"),
    ("/agents/cat/failure", {"bead": 1, "message": "BAD"}, "message"),
    ("/agents/cat/review", {"merge_request": 1, "passed": True, "summary": "BAD"}, "summary"),
    ("/agents/cat/heartbeat", {"note": "BAD"}, "note"),
]


def _with(value: Any, bad: str) -> Any:
    if value == "BAD":
        return bad
    if isinstance(value, dict):
        return {k: _with(v, bad) for k, v in value.items()}
    if isinstance(value, list):
        return [_with(v, bad) for v in value]
    return value


@pytest.mark.parametrize("bad", BAD_STRINGS)
@pytest.mark.parametrize(("path", "body", "field"), CASES)
def test_a_string_the_database_cannot_store_is_400_naming_it(api, agent, path, body, field, bad):
    before = _writes()
    response = api.post(path, _with(body, bad))
    assert response.status_code == 400, response.json()
    assert response.json()["field"] == field
    assert _writes() == before


def test_a_bad_key_is_400_named_printably(api, rig):
    response = api.post("/beads", {"title": "t", "k\x00": 1})
    assert response.status_code == 400
    assert response.json()["field"] == "k\\x00"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/beads", {"title": ["t"]}, "title"),
        ("/beads", {"title": "t", "body": "x" * 100_001}, "body"),
        ("/beads", {"title": "t", "labels": ["x" * 51]}, "labels[0]"),
        ("/beads", {"title": "t", "rig": "x" * 101}, "rig"),
        ("/beads", {"title": "t", "blocks": [1.5]}, "blocks[0]"),
        ("/beads", {"title": "t", "convoy": "1"}, "convoy"),
        ("/convoys", {"title": "c", "beads": {"title": "t"}}, "beads"),
        ("/convoys", {"title": "c", "beads": ["t"]}, "beads[0]"),
        ("/convoys", {"title": "c", "merge_mode": 1}, "merge_mode"),
        ("/agents/cat/done", {"bead": 1, "branch": "b" * 201}, "branch"),
        ("/agents/cat/done", {"bead": 1, "branch": "b", "pr_url": 7}, "pr_url"),
        ("/agents/cat/failure", {"bead": 1, "message": "m" * 10_001}, "message"),
        ("/agents/cat/review", {"merge_request": 1, "passed": "yes"}, "passed"),
    ],
)
def test_wrong_types_and_over_long_values_are_400_naming_the_field(api, agent, path, body, field):
    before = _writes()
    response = api.post(path, body)
    assert response.status_code == 400, response.json()
    assert response.json()["field"] == field
    assert _writes() == before


# Raw query strings: the encoded UTF-8 of a surrogate, as a client that does not check sends it.
@pytest.mark.parametrize(
    "query", ["", "%00", "1%00", "%ED%A0%80", "%FF", "5" * 400, "1.5", "5.0", "-1", "+1", "%201"]
)
def test_a_bad_limit_in_the_query_string_is_400(api, query):
    response = api.client.get(
        f"/api/v1/awaiting-approval?limit={query}", headers=api._headers(None)
    )
    assert response.status_code == 400
    assert response.json()["field"] == "limit"


@pytest.mark.parametrize("name", ["cat%00", "%ED%A0%80", "c" * 101])
def test_an_unusable_agent_name_in_the_path_is_404(api, agent, name):
    response = api.client.get(f"/api/v1/agents/{name}/assignment", headers=api._headers(None))
    assert response.status_code == 404


def test_review_of_a_refinery_with_a_bad_summary_changes_nothing(api, rig):
    refinery = AgentFactory(town=rig.town, rig=rig, name="ref", role=AgentRole.REFINERY)
    response = api.post(
        f"/agents/{refinery.name}/review",
        {"merge_request": 1, "passed": True, "summary": "\ud800"},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "summary"
