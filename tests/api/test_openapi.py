"""The OpenAPI document says exactly what the API does, case by case where they used to
disagree: nulls, an empty `limit=`, whole-number floats, `pr_url`'s format, when POST /convoys
needs a rig, unknown fields, and the branch rules. Each case checks the document (with the
validator schemathesis uses) and the API on the same values."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from beads.models import Bead, BeadStatus, MergeRequest
from gastown.api.schema import openapi_document
from tests.factories import AgentFactory, BeadFactory, ConvoyFactory, RigFactory

pytestmark = pytest.mark.django_db


def body_schema(path: str) -> dict[str, Any]:
    document = openapi_document()
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return {**schema["schema"], "components": document["components"]}


def valid(path: str, body: Any) -> bool:
    return jsonschema_rs.validator_for(body_schema(path)).is_valid(body)


@pytest.fixture
def agent(rig):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
    agent = AgentFactory(town=rig.town, rig=rig, name="cat", hooked_bead=bead)
    Bead.objects.filter(pk=bead.pk).update(assignee=agent)
    return agent


# --- nulls: an optional field takes null, the same as leaving it out ----------------------


@pytest.mark.parametrize(
    "field", ["body", "priority", "labels", "rig", "convoy", "blocks", "blocked_by"]
)
def test_null_in_an_optional_bead_field_is_valid_and_accepted(api, rig, field):
    body = {"title": "t", field: None}
    assert valid("/beads", body)
    assert api.post("/beads", body).status_code == 201


@pytest.mark.parametrize("field", ["rig", "merge_mode", "beads"])
def test_null_in_an_optional_convoy_field_is_valid_and_accepted(api, rig, field):
    body = {"title": "c", field: None}
    assert valid("/convoys", body)
    assert api.post("/convoys", body).status_code == 201


def test_null_pr_url_and_summary_are_valid_and_accepted(api, agent):
    bead_id = agent.hooked_bead_id
    done = {"bead": bead_id, "branch": "polecat/x", "pr_url": None}
    assert valid("/agents/{name}/done", done)
    assert api.post("/agents/cat/done", done).status_code == 201
    review = {"merge_request": 1, "passed": True, "summary": None}
    assert valid("/agents/{name}/review", review)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/beads", {"title": None}, "title"),
        ("/beads", {"title": "t", "labels": [None]}, "labels[0]"),
        ("/agents/cat/failure", {"bead": 1, "message": None}, "message"),
        ("/agents/cat/done", {"bead": None, "branch": "b"}, "bead"),
        ("/agents/cat/review", {"merge_request": 1, "passed": None}, "passed"),
    ],
)
def test_null_in_a_required_field_is_invalid_and_refused(api, agent, path, body, field):
    assert not valid(path.replace("cat", "{name}"), body)
    response = api.post(path, body)
    assert response.status_code == 400
    assert response.json()["field"] == field


# --- limit= ------------------------------------------------------------------------------


def test_limit_is_an_integer_when_present(api):
    parameter = openapi_document()["paths"]["/awaiting-approval"]["get"]["parameters"][0]
    assert parameter["schema"]["type"] == "integer"
    assert not parameter.get("allowEmptyValue")
    assert api.get("/awaiting-approval", limit="").status_code == 400
    assert api.get("/awaiting-approval").status_code == 200


def test_an_unknown_query_parameter_is_refused(api):
    response = api.get("/awaiting-approval", page=2)
    assert response.status_code == 400
    assert response.json()["field"] == "page"
    response = api.get("/agents/cat/assignment", verbose=1)
    assert (response.status_code, response.json()["field"]) == (400, "verbose")


# --- whole-number floats -----------------------------------------------------------------


def test_a_whole_number_float_is_an_integer_id(api, agent):
    body = {"bead": float(agent.hooked_bead_id), "branch": "polecat/x"}
    assert valid("/agents/{name}/done", body)
    response = api.post("/agents/cat/done", body)
    assert response.status_code == 201, response.json()
    assert response.json()["merge_request"]["source"] == agent.hooked_bead_id


def test_whole_number_floats_in_id_lists_and_convoys(api, rig):
    other = BeadFactory(town=rig.town, rig=rig)
    convoy = ConvoyFactory(town=rig.town, rig=rig)
    body = {"title": "t", "blocked_by": [float(other.pk)], "convoy": float(convoy.pk)}
    assert valid("/beads", body)
    response = api.post("/beads", body)
    assert response.status_code == 201, response.json()
    assert response.json()["convoy"] == convoy.pk


@pytest.mark.parametrize("value", [1.5, 0.0, -1.0, 2.0**63, float("1e300")])
def test_other_floats_are_no_ids(api, agent, value):
    body = {"bead": value, "branch": "polecat/x"}
    assert not valid("/agents/{name}/done", body)
    response = api.post("/agents/cat/done", body)
    assert (response.status_code, response.json()["field"]) == (400, "bead")


# --- pr_url's format ---------------------------------------------------------------------

GOOD_URLS = [
    "https://github.com/acme/web/pull/7",
    "http://github.com/acme/web/pull/7/",
    "https://www.github.com/acme/web.js/pull/123456789/files",
    "https://github.com/a-b/c_d/pull/1/commits",
    "https://github.com/acme/web/pull/07",
]
BAD_URLS = [
    "acme/web#7",
    "https://github.com/acme/web/issues/7",
    "https://example.com/acme/web/pull/7",
    "https://github.com/./web/pull/7",
    "https://github.com/acme/../pull/7",
    "https://github.com/acme/web/pull/0",
    " https://github.com/acme/web/pull/7",
    "https://github.com/acme/web/pull/7\n",
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_a_pr_url_of_the_documented_format_is_accepted(api, agent, url):
    # (The rig's repository is checked separately: acme/web here, a 400 otherwise.)
    agent.rig.repo = url.split("/")[3] + "/" + url.split("/")[4]
    agent.rig.save()
    body = {"bead": agent.hooked_bead_id, "branch": "polecat/x", "pr_url": url}
    assert valid("/agents/{name}/done", body)
    assert api.post("/agents/cat/done", body).status_code == 201


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_pr_url_outside_the_documented_format_is_refused(api, agent, url):
    body = {"bead": agent.hooked_bead_id, "branch": "polecat/x", "pr_url": url}
    assert not valid("/agents/{name}/done", body)
    response = api.post("/agents/cat/done", body)
    assert (response.status_code, response.json()["field"]) == (400, "pr_url")
    assert MergeRequest.objects.count() == 0


def test_the_pr_url_format_follows_the_github_web_host(settings):
    settings.GITHUB_WEB_URL = "https://git.example.com"
    assert valid(
        "/agents/{name}/done",
        {"bead": 1, "branch": "b", "pr_url": "https://git.example.com/a/b/pull/1"},
    )


# --- branch ------------------------------------------------------------------------------


@pytest.mark.parametrize("branch", ["main", "polecat/fix-1", "x@y", "a.b/c", "fix\u00e9"])
def test_a_documented_branch_is_accepted(api, agent, branch):
    body = {"bead": agent.hooked_bead_id, "branch": branch}
    assert valid("/agents/{name}/done", body)
    assert api.post("/agents/cat/done", body).status_code == 201


@pytest.mark.parametrize(
    "branch",
    [
        "-x",
        "/x",
        "x/",
        "x.",
        ".x",
        "a/.b",
        "a..b",
        "a//b",
        "a@{b",
        "@",
        "a.lock",
        "a.lock/b",
        "a b",
        "a~b",
        "a\tb",
        " main",
        "main ",
        "main\n",
        "main\u00a0",
        "\u3000main",
    ],
)
def test_a_branch_outside_the_documented_rules_is_refused(api, agent, branch):
    body = {"bead": agent.hooked_bead_id, "branch": branch}
    assert not valid("/agents/{name}/done", body)
    response = api.post("/agents/cat/done", body)
    assert (response.status_code, response.json()["field"]) == (400, "branch")


# --- text: length as sent, not blank, no NUL ---------------------------------------------


@pytest.mark.parametrize(
    ("title", "ok"),
    [
        ("x", True),
        (" x ", True),
        ("x" * 300, True),
        (" " + "x" * 300, False),
        ("   ", False),
        ("\u2003", False),
        ("\x1c", False),
        ("a\x00", False),
    ],
)
def test_title_rules_agree(api, rig, title, ok):
    assert valid("/beads", {"title": title}) is ok
    assert (api.post("/beads", {"title": title}).status_code == 201) is ok


# --- unknown fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/beads", {"title": "t", "tittle": "x"}, "tittle"),
        ("/convoys", {"title": "c", "beads": [{"title": "t", "convoy": 1}]}, "beads[0].convoy"),
        ("/agents/cat/heartbeat", {"status": "ok"}, "status"),
        ("/agents/cat/done", {"bead": 1, "branch": "b", "pr": "x"}, "pr"),
    ],
)
def test_an_unknown_field_is_invalid_and_refused(api, agent, path, body, field):
    assert not valid(path.replace("cat", "{name}"), body)
    response = api.post(path, body)
    assert (response.status_code, response.json()["field"]) == (400, field)


# --- POST /convoys and its rig -----------------------------------------------------------


def test_the_document_says_when_a_convoy_needs_a_rig():
    rig = body_schema("/convoys")["properties"]["rig"]
    assert "several rigs" in rig["description"]
    assert "default merge mode" in rig["description"]
    assert "rig" not in body_schema("/convoys")["required"]


def test_a_review_then_land_convoy_without_a_rig_in_a_town_of_one_rig_is_accepted(api, rig):
    body = {"title": "c", "merge_mode": "review-then-land"}
    assert valid("/convoys", body)
    assert api.post("/convoys", body).status_code == 201
    RigFactory(town=rig.town, name="second")
    response = api.post("/convoys", body)
    assert (response.status_code, response.json()["field"]) == (400, "rig")
