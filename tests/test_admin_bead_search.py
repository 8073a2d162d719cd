"""The admin's bead search (README, "Performance"): bd-N is the bead, words match the title,
the PR URL, the branch or the assignee, every word must match, and the queries do not grow
with the beads, whether a word is rare (its matching ids) or common (the newest-first walk)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from beads import admin as beads_admin
from beads.models import Bead
from tests.factories import AgentFactory, BeadFactory, MergeRequestFactory, RigFactory

pytestmark = pytest.mark.django_db

URL = reverse("admin:beads_bead_changelist")


def found(client, q: str) -> set[int]:
    response = client.get(URL, {"q": q})
    assert response.status_code == 200
    return {bead.pk for bead in response.context["cl"].result_list}


@pytest.fixture
def beads():
    rig = RigFactory(repo="acme/web")
    agent = AgentFactory(town=rig.town, rig=rig, name="polecat-zebra")
    pay = BeadFactory(town=rig.town, rig=rig, title="Pay button is slow", assignee=agent)
    login = BeadFactory(town=rig.town, rig=rig, title="Login button is slow")
    other = BeadFactory(town=rig.town, rig=rig, title="Unrelated")
    mr = MergeRequestFactory(
        bead__town=rig.town,
        bead__rig=rig,
        bead__title="MR for the checkout",
        branch="feature/quokka-cart",
        pr_url="https://github.com/acme/web/pull/9911",
    )
    return {"pay": pay, "login": login, "other": other, "mr": mr.bead}


def test_bd_reference_finds_that_bead_only(admin_client, beads):
    pay = beads["pay"]
    assert found(admin_client, f"bd-{pay.pk}") == {pay.pk}
    assert found(admin_client, f"BD-{pay.pk}") == {pay.pk}
    assert found(admin_client, "bd-999999") == set()


def test_words_match_title_pr_branch_and_assignee(admin_client, beads):
    ids = {name: bead.pk for name, bead in beads.items()}
    assert found(admin_client, "button") == {ids["pay"], ids["login"]}
    assert found(admin_client, "BUTTON slow pay") == {ids["pay"]}
    assert found(admin_client, "pull/9911") == {ids["mr"]}
    assert found(admin_client, "#9911") == set()  # a PR number, not a bead: no bead says so
    assert found(admin_client, "quokka") == {ids["mr"]}
    assert found(admin_client, "zebra") == {ids["pay"]}
    assert found(admin_client, '"is slow"') == {ids["pay"], ids["login"]}
    assert found(admin_client, "button quokka") == set()
    assert found(admin_client, "99") == set()  # under three letters: the title only


def test_a_bare_number_is_the_bead_and_the_words_containing_it(admin_client, beads):
    numbered = BeadFactory(title=f"Fix issue {beads['other'].pk}")
    assert found(admin_client, str(beads["other"].pk)) >= {beads["other"].pk, numbered.pk}


def test_a_common_word_gives_the_same_beads_by_the_walk(admin_client, beads, monkeypatch):
    rare = found(admin_client, "button slow")
    monkeypatch.setattr(beads_admin, "SEARCH_CAP", 1)
    assert found(admin_client, "button slow") == rare
    response = admin_client.get(URL, {"q": "button"})
    assert response.context["cl"].result_count == 1  # counted up to the cap


def _queries(client, q: str) -> int:
    client.get(URL, {"q": q})
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(URL, {"q": q}).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("cap", [1000, 2], ids=["rare", "common"])
def test_search_queries_do_not_grow_with_beads(admin_client, beads, monkeypatch, cap):
    monkeypatch.setattr(beads_admin, "SEARCH_CAP", cap)
    rig = RigFactory()
    Bead.objects.bulk_create(
        Bead(town=rig.town, rig=rig, title=f"Slow button {i}") for i in range(3)
    )
    few = _queries(admin_client, "slow button")
    Bead.objects.bulk_create(
        Bead(town=rig.town, rig=rig, title=f"Slow button {i}") for i in range(3, 60)
    )
    assert _queries(admin_client, "slow button") == few
