"""API v1 end to end through Django's test client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from beads.models import (
    Bead,
    BeadDependency,
    BeadStatus,
    BeadType,
    Blocker,
    MergeRequest,
    ReviewStatus,
)
from gastown.api.auth import api_token_create, api_token_revoke
from gastown.models import AgentRole, AgentStatus, ApiToken, Convoy, ConvoyStatus, MergeMode
from tests.factories import (
    AgentFactory,
    BeadDependencyFactory,
    BeadFactory,
    ConvoyFactory,
    MergeRequestFactory,
    RigFactory,
    TownFactory,
)

pytestmark = pytest.mark.django_db

PR = "https://github.com/acme/web/pull/7"


def hooked(bead, **kwargs):
    agent = AgentFactory(town=bead.town, rig=bead.rig, hooked_bead=bead, **kwargs)
    Bead.objects.filter(pk=bead.pk).update(assignee=agent)
    return agent


# --- authentication -----------------------------------------------------------------------


def test_missing_token_is_401_with_a_bearer_challenge(api):
    response = api.get("/awaiting-approval", token="")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "error" in response.json()


@pytest.mark.parametrize("bad", ["gt_" + "x" * 43, "nonsense", "gt_\x00abcdefghijklmnopqrstu"])
def test_unknown_token_is_401(api, bad):
    assert api.get("/awaiting-approval", token=bad).status_code == 401


def test_revoked_token_is_401(api, town):
    row = ApiToken.objects.get(town=town)
    api_token_revoke(token=row)
    assert api.get("/awaiting-approval").status_code == 401


def test_token_is_stored_hashed_and_records_its_use(api, town, token):
    row = ApiToken.objects.get(town=town)
    assert token not in (row.token_hash, row.prefix)
    assert token.startswith(row.prefix)
    assert row.last_used_at is None
    assert api.get("/awaiting-approval").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_a_token_cannot_see_another_towns_agents_or_beads(api, rig):
    other_rig = RigFactory(town=TownFactory(slug="other"))
    bead = BeadFactory(town=other_rig.town, rig=other_rig, status=BeadStatus.IN_PROGRESS)
    foreign = hooked(bead, name="stranger")
    assert api.get("/agents/stranger/assignment").status_code == 404
    mine = AgentFactory(town=rig.town, rig=rig, name="mine")
    response = api.post("/agents/mine/done", {"bead": bead.pk, "branch": "b"})
    assert response.status_code == 404
    assert response.json()["field"] == "bead"
    response = api.post("/beads", {"title": "x", "blocks": [bead.pk]})
    assert response.status_code == 404
    assert response.json()["field"] == "blocks[0]"
    assert MergeRequest.objects.count() == 0
    foreign.refresh_from_db()
    assert foreign.last_heartbeat_at is None
    assert mine.hooked_bead is None


def test_csrf_is_not_required_for_token_requests(token, rig):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/beads",
        {"title": "t"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201


# --- protocol errors ----------------------------------------------------------------------


def test_wrong_method_is_405_with_allow(api):
    response = api.get("/beads")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert api.post("/awaiting-approval", {}).status_code == 405


def test_malformed_json_is_400(api, client, token):
    response = client.generic(
        "POST",
        "/api/v1/beads",
        "{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


def test_a_json_array_body_is_400(api):
    assert api.post("/beads", [1, 2]).status_code == 400


def test_wrong_content_type_is_415(client, token):
    response = client.post(
        "/api/v1/beads",
        {"title": "form"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 415
    assert Bead.objects.count() == 0


def test_unknown_agent_is_404(api):
    response = api.post("/agents/nobody/heartbeat")
    assert response.status_code == 404
    assert response.json()["field"] == "name"


# --- beads and convoys --------------------------------------------------------------------


def test_create_bead_with_labels_rig_convoy_and_blocks(api, rig):
    convoy = ConvoyFactory(town=rig.town, rig=rig, merge_mode=MergeMode.REVIEW_AND_MERGE)
    later = BeadFactory(town=rig.town, rig=rig)
    response = api.post(
        "/beads",
        {
            "title": " Fix login ",
            "body": "details",
            "priority": "high",
            "labels": ["auth"],
            "rig": "web",
            "convoy": convoy.pk,
            "blocks": [later.pk],
        },
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    bead = Bead.objects.get(pk=data["id"])
    assert (bead.title, bead.priority, bead.labels) == ("Fix login", "high", ["auth"])
    assert (bead.rig, bead.convoy, bead.type) == (rig, convoy, BeadType.ISSUE)
    assert bead.created_by == "api:runtime"
    assert BeadDependency.objects.filter(bead=later, depends_on=bead, kind="blocks").exists()
    assert data["rig"] == "web"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": 5}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"title": "t", "priority": "urgent"}, "priority"),
        ({"title": "t", "labels": "a"}, "labels"),
        ({"title": "t", "labels": [""]}, "labels[0]"),
        ({"title": "t", "blocks": ["1"]}, "blocks[0]"),
        ({"title": "t", "blocks": [2**70]}, "blocks[0]"),
        ({"title": "t", "convoy": True}, "convoy"),
        ({"title": "a\x00b"}, "title"),
    ],
)
def test_create_bead_validation_names_the_field(api, rig, body, field):
    response = api.post("/beads", body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert Bead.objects.count() == 0


def _field_of_rejected(api, path, body):
    before = (Bead.objects.count(), BeadDependency.objects.count(), Convoy.objects.count())
    response = api.post(path, body)
    assert 400 <= response.status_code < 500, response.json()
    assert (Bead.objects.count(), BeadDependency.objects.count(), Convoy.objects.count()) == before
    return response.json()["field"]


def test_create_bead_blocking_and_blocked_by_the_same_bead_is_a_cycle(api, rig):
    other = BeadFactory(town=rig.town, rig=rig)
    body = {"title": "t", "blocks": [other.pk], "blocked_by": [other.pk]}
    assert _field_of_rejected(api, "/beads", body) == "blocks[0]"


def test_create_bead_closing_a_longer_dependency_cycle_is_400(api, rig):
    first, middle, last = (BeadFactory(town=rig.town, rig=rig) for _ in range(3))
    BeadDependencyFactory(bead=first, depends_on=middle)
    BeadDependencyFactory(bead=middle, depends_on=last)
    # new waits for first, which waits (through middle) for last, which would wait for new.
    unrelated = BeadFactory(town=rig.town, rig=rig)
    body = {"title": "t", "blocked_by": [first.pk], "blocks": [unrelated.pk, last.pk]}
    assert _field_of_rejected(api, "/beads", body) == "blocks[1]"


def test_create_bead_next_to_a_chain_through_a_closed_bead_is_no_cycle(api, rig):
    first, last = BeadFactory(town=rig.town, rig=rig), BeadFactory(town=rig.town, rig=rig)
    done = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.CLOSED)
    BeadDependencyFactory(bead=first, depends_on=done)
    BeadDependencyFactory(bead=done, depends_on=last)
    response = api.post("/beads", {"title": "t", "blocked_by": [first.pk], "blocks": [last.pk]})
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("field", ["blocks", "blocked_by"])
@pytest.mark.parametrize("bead_type", [BeadType.MERGE_REQUEST, BeadType.ESCALATION])
def test_create_bead_links_only_to_issue_beads(api, rig, field, bead_type):
    target = BeadFactory(town=rig.town, rig=rig, type=bead_type)
    assert _field_of_rejected(api, "/beads", {"title": "t", field: [target.pk]}) == f"{field}[0]"


def test_create_bead_blocked_by_another_towns_bead_is_404(api, rig):
    foreign = BeadFactory(town=RigFactory(town=TownFactory(slug="other")).town)
    assert _field_of_rejected(api, "/beads", {"title": "t", "blocked_by": [foreign.pk]}) == (
        "blocked_by[0]"
    )


@pytest.mark.parametrize(
    "status",
    [
        ConvoyStatus.READY_TO_LAND,
        ConvoyStatus.LANDING,
        ConvoyStatus.LANDED,
        ConvoyStatus.FAILED,
        ConvoyStatus.CLOSED,
    ],
)
def test_create_bead_in_a_convoy_that_is_not_open_is_400(api, rig, status):
    convoy = ConvoyFactory(town=rig.town, rig=rig, status=status)
    assert _field_of_rejected(api, "/beads", {"title": "t", "convoy": convoy.pk}) == "convoy"


def test_create_bead_without_a_rig_goes_to_the_towns_only_rig(api, rig):
    response = api.post("/beads", {"title": "t"})
    assert response.status_code == 201
    assert Bead.objects.get().rig == rig


def test_create_bead_without_a_rig_in_a_town_of_several_rigs_is_400(api, rig):
    RigFactory(town=rig.town, name="api", repo="acme/api")
    assert _field_of_rejected(api, "/beads", {"title": "t"}) == "rig"
    response = api.post("/convoys", {"title": "c", "beads": [{"title": "t"}]})
    assert response.status_code == 400
    assert response.json()["field"] == "beads[0].rig"
    assert Convoy.objects.count() == 0


def test_create_bead_in_a_town_without_rigs_is_400(api):
    assert _field_of_rejected(api, "/beads", {"title": "t"}) == "rig"


def test_create_bead_in_a_convoy_takes_the_convoys_rig(api, rig):
    RigFactory(town=rig.town, name="api", repo="acme/api")
    convoy = ConvoyFactory(town=rig.town, rig=rig)
    response = api.post("/beads", {"title": "t", "convoy": convoy.pk})
    assert response.status_code == 201, response.json()
    assert Bead.objects.get().rig == rig


def test_create_bead_in_an_unknown_rig_is_404(api, rig):
    response = api.post("/beads", {"title": "t", "rig": "nope"})
    assert response.status_code == 404
    assert response.json()["field"] == "rig"


def test_create_convoy_with_beads(api, rig):
    response = api.post(
        "/convoys",
        {
            "title": "Checkout v2",
            "rig": "web",
            "merge_mode": "review-then-land",
            "beads": [{"title": "one"}, {"title": "two", "priority": "low"}],
        },
    )
    assert response.status_code == 201, response.json()
    convoy = Convoy.objects.get()
    assert convoy.merge_mode == MergeMode.REVIEW_THEN_LAND
    assert convoy.feature_branch.startswith(f"convoy/{convoy.pk}-checkout-v2")
    assert sorted(convoy.beads.values_list("title", flat=True)) == ["one", "two"]
    assert set(convoy.beads.values_list("rig", flat=True)) == {rig.pk}


def test_convoy_with_one_invalid_bead_creates_nothing(api, rig):
    response = api.post(
        "/convoys",
        {"title": "c", "rig": "web", "beads": [{"title": "ok"}, {"title": ""}]},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "beads[1].title"
    assert Convoy.objects.count() == 0
    assert Bead.objects.count() == 0


def test_review_then_land_convoy_needs_a_rig_when_the_town_has_several(api, rig):
    RigFactory(town=rig.town, name="api")
    response = api.post("/convoys", {"title": "c", "merge_mode": "review-then-land"})
    assert response.status_code == 400
    assert response.json()["field"] == "rig"
    assert Convoy.objects.count() == 0


def test_review_then_land_convoy_defaults_to_the_towns_only_rig(api, rig):
    response = api.post("/convoys", {"title": "c", "merge_mode": "review-then-land"})
    assert response.status_code == 201, response.json()
    assert response.json()["rig"] == "web"
    assert response.json()["feature_branch"].startswith("convoy/")


def test_the_towns_default_merge_mode_decides_whether_a_convoy_needs_a_rig(api, rig):
    rig.town.default_merge_mode = "review-then-land"
    rig.town.save()
    RigFactory(town=rig.town, name="api")
    response = api.post("/convoys", {"title": "c"})
    assert response.status_code == 400
    assert response.json()["field"] == "rig"
    rig.town.default_merge_mode = "review-and-merge"
    rig.town.save()
    assert api.post("/convoys", {"title": "c"}).json()["rig"] is None


# --- agent reports ------------------------------------------------------------------------


def test_assignment_returns_the_hooked_bead_and_marks_the_agent_working(api, rig, settings):
    settings.AGENT_RUNTIME_URL = ""
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.OPEN)
    agent = hooked(bead, name="cat-1")
    response = api.get("/agents/cat-1/assignment")
    assert response.status_code == 200
    data = response.json()
    assert data["assignment"]["id"] == bead.pk
    assert data["merge_request"] is None
    agent.refresh_from_db()
    assert agent.status == AgentStatus.WORKING


def test_assignment_of_an_idle_agent_is_null(api, rig):
    AgentFactory(town=rig.town, rig=rig, name="idle")
    response = api.get("/agents/idle/assignment")
    assert response.json()["assignment"] is None


def test_heartbeat_without_a_body(api, rig):
    agent = AgentFactory(town=rig.town, rig=rig, name="cat-1")
    response = api.post("/agents/cat-1/heartbeat")
    assert response.status_code == 200
    agent.refresh_from_db()
    assert agent.last_heartbeat_at is not None


def test_done_creates_an_mr_into_the_convoys_feature_branch(api, rig):
    convoy = ConvoyFactory(
        town=rig.town, rig=rig, merge_mode=MergeMode.REVIEW_THEN_LAND, feature_branch="convoy/9"
    )
    bead = BeadFactory(town=rig.town, rig=rig, convoy=convoy, status=BeadStatus.IN_PROGRESS)
    hooked(bead, name="cat-1")
    response = api.post("/agents/cat-1/done", {"bead": bead.pk, "branch": "cat/1", "pr_url": PR})
    assert response.status_code == 201, response.json()
    mr = MergeRequest.objects.get(source=bead)
    assert mr.target_branch == "convoy/9"
    assert mr.bead.type == BeadType.MERGE_REQUEST
    assert response.json()["merge_request"]["id"] == mr.pk
    assert response.json()["merge_request"]["pr_number"] == 7


def test_done_without_a_convoy_targets_the_default_branch(api, rig):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
    hooked(bead, name="cat-1")
    response = api.post("/agents/cat-1/done", {"bead": bead.pk, "branch": "cat/1"})
    assert response.status_code == 201
    assert MergeRequest.objects.get(source=bead).target_branch == "main"


def test_done_with_a_bad_pr_url_is_400_and_writes_nothing(api, rig):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
    hooked(bead, name="cat-1")
    response = api.post(
        "/agents/cat-1/done",
        {"bead": bead.pk, "branch": "b", "pr_url": "https://github.com/acme/web/issues/7"},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "pr_url"
    assert MergeRequest.objects.count() == 0


@pytest.mark.parametrize(
    "pr_url", ["https://github.com/other/web/pull/7", "https://github.com/acme/api/pull/7"]
)
def test_done_with_a_pr_outside_the_rigs_repository_is_400_and_writes_nothing(api, rig, pr_url):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
    agent = hooked(bead, name="cat-1")
    response = api.post("/agents/cat-1/done", {"bead": bead.pk, "branch": "b", "pr_url": pr_url})
    assert response.status_code == 400
    assert response.json()["field"] == "pr_url"
    assert "acme/web" in response.json()["error"]
    assert MergeRequest.objects.count() == 0
    bead.refresh_from_db()
    agent.refresh_from_db()
    assert (bead.status, agent.hooked_bead) == (BeadStatus.IN_PROGRESS, bead)


@pytest.mark.parametrize("branch", ["two words", "a..b", "-x", "x/", "x.lock", "a\x01b", "b" * 201])
def test_done_with_a_branch_that_is_no_git_ref_is_400(api, rig, branch):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
    hooked(bead, name="cat-1")
    response = api.post("/agents/cat-1/done", {"bead": bead.pk, "branch": branch})
    assert response.status_code == 400
    assert response.json()["field"] == "branch"
    assert MergeRequest.objects.count() == 0


def test_done_for_someone_elses_bead_is_409(api, rig):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
    hooked(bead)
    AgentFactory(town=rig.town, rig=rig, name="cat-2")
    response = api.post("/agents/cat-2/done", {"bead": bead.pk, "branch": "b"})
    assert response.status_code == 409
    assert MergeRequest.objects.count() == 0


def test_done_for_a_rework_bead_answers_200_with_the_existing_mr(api, rig):
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    rework = BeadFactory(
        town=rig.town,
        rig=rig,
        status=BeadStatus.IN_PROGRESS,
        labels=["rework"],
        metadata={"merge_request_id": mr.pk},
    )
    hooked(rework, name="cat-1")
    response = api.post("/agents/cat-1/done", {"bead": rework.pk, "branch": mr.branch})
    assert response.status_code == 200
    assert response.json()["merge_request"]["id"] == mr.pk
    mr.refresh_from_db()
    assert mr.check_requested_at is not None


def test_failure_reopens_the_bead(api, rig):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS, dispatch_attempts=1)
    hooked(bead, name="cat-1")
    response = api.post("/agents/cat-1/failure", {"bead": bead.pk, "message": "flaky build"})
    assert response.status_code == 200
    assert response.json()["bead"]["status"] == "open"
    assert response.json()["bead"]["metadata"]["last_failure"]["message"] == "flaky build"


def test_failure_needs_a_message(api, rig):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
    hooked(bead, name="cat-1")
    response = api.post("/agents/cat-1/failure", {"bead": bead.pk})
    assert response.status_code == 400
    assert response.json()["field"] == "message"


def test_review_changes_requested(api, rig):
    source = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_REVIEW)
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, source=source, pr_url=PR)
    Bead.objects.filter(pk=mr.bead_id).update(status=BeadStatus.IN_PROGRESS)
    AgentFactory(town=rig.town, rig=rig, name="ref", role=AgentRole.REFINERY, hooked_bead=mr.bead)
    response = api.post(
        "/agents/ref/review", {"merge_request": mr.pk, "passed": False, "summary": "tests"}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["merge_request"]["review_status"] == "changes_requested"
    mr.refresh_from_db()
    assert mr.review_status == ReviewStatus.CHANGES_REQUESTED
    assert Bead.objects.filter(metadata__merge_request_id=mr.pk).count() == 1


def test_review_needs_a_boolean_passed(api, rig):
    AgentFactory(town=rig.town, rig=rig, name="ref", role=AgentRole.REFINERY)
    response = api.post("/agents/ref/review", {"merge_request": 1, "passed": "yes"})
    assert response.status_code == 400
    assert response.json()["field"] == "passed"


def test_review_by_a_polecat_is_409(api, rig):
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig)
    AgentFactory(town=rig.town, rig=rig, name="cat")
    response = api.post("/agents/cat/review", {"merge_request": mr.pk, "passed": True})
    assert response.status_code == 409


# --- awaiting approval --------------------------------------------------------------------


def _waiting(rig, since):
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    MergeRequest.objects.filter(pk=mr.pk).update(
        blocker=Blocker.HUMAN_REVIEW, awaiting_approval=True, waiting_since=since
    )
    return mr


def test_awaiting_approval_lists_oldest_first_and_only_this_town(api, rig):
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    newer = _waiting(rig, t0 + timedelta(hours=2))
    older = _waiting(rig, t0)
    _waiting(RigFactory(town=TownFactory(slug="else")), t0 - timedelta(hours=1))
    data = api.get("/awaiting-approval").json()
    assert [r["id"] for r in data["results"]] == [older.pk, newer.pk]
    assert data["truncated"] is False
    limited = api.get("/awaiting-approval", limit=1).json()
    assert [r["id"] for r in limited["results"]] == [older.pk]
    assert limited["truncated"] is True


@pytest.mark.parametrize("limit", ["0", "201", "x", "٣"])
def test_awaiting_approval_rejects_a_bad_limit(api, limit):
    response = api.get("/awaiting-approval", limit=limit)
    assert response.status_code == 400
    assert response.json()["field"] == "limit"


def test_awaiting_approval_queries_do_not_grow_with_rows(api, rig):
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    _waiting(rig, t0)
    api.get("/awaiting-approval")  # the first use also stamps the token's last_used_at
    with CaptureQueriesContext(connection) as few:
        api.get("/awaiting-approval")
    for i in range(15):
        _waiting(rig, t0 + timedelta(minutes=i))
    with CaptureQueriesContext(connection) as many:
        assert len(api.get("/awaiting-approval").json()["results"]) == 16
    assert len(many) == len(few)


# --- schema and docs ----------------------------------------------------------------------


def test_openapi_document_is_served_without_a_token(client):
    data = client.get("/api/v1/openapi.json").json()
    assert data["openapi"].startswith("3.1")
    assert "/agents/{name}/done" in data["paths"]


def test_docs_page_lists_every_endpoint_and_loads_nothing_from_outside(client):
    html = client.get("/api/v1/docs").content.decode()
    for path in ("/beads", "/convoys", "/agents/{name}/assignment", "/awaiting-approval"):
        assert f"<code>{path}</code>" in html
    assert "<script" not in html
    assert "http://" not in html.replace("http://testserver", "")
    assert "https://" not in html.replace("https://github.com/OWNER/REPO/pull/N", "")


def test_api_token_create_refuses_a_duplicate_name(town):
    api_token_create(town=town, name="x")
    with pytest.raises(Exception, match="already has"):
        api_token_create(town=town, name="x")
