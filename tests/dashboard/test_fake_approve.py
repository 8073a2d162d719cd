"""Demo only: approving a PR on the fake GitHub through its /_fake/ control API."""

from __future__ import annotations

import pytest

from beads.models import BeadEvent, BeadStatus, Blocker
from gastown.demo.overrides import fake_pr_approve
from gastown.services.overrides import OverrideRefused
from tests.factories import MergeRequestFactory

pytestmark = pytest.mark.django_db


def test_fake_approve_approves_on_the_fake_and_makes_the_mr_due(fake_github, town, lead):
    fake_github.create_repo("acme/web", required_approvals=1)
    pull = fake_github.create_pr("acme/web", head="feature", base="main")
    fake_github.request_review("acme/web", pull.number, login="alice")
    mr = MergeRequestFactory(
        bead__town=town,
        bead__status=BeadStatus.IN_PROGRESS,
        pr_url=fake_github.pr_url("acme/web", pull.number),
        blocker=Blocker.HUMAN_REVIEW,
        requested_reviewers=["alice"],
    )
    message = fake_pr_approve(merge_request=mr, user=lead, reason="demo")
    assert "approved on the fake GitHub as alice" in message
    assert ("alice", "APPROVED") in fake_github.pull("acme/web", pull.number).reviews
    mr.refresh_from_db()
    assert mr.check_requested_at is not None
    assert BeadEvent.objects.filter(bead=mr.bead, kind="override").count() == 1


def test_fake_approve_is_refused_against_real_github(settings, town, lead):
    settings.GITHUB_API_URL = "https://api.github.com"
    mr = MergeRequestFactory(bead__town=town, pr_url="x")
    with pytest.raises(OverrideRefused, match="only for the demo"):
        fake_pr_approve(merge_request=mr, user=lead)


def test_fake_approve_button_shows_only_for_a_local_github(settings, lead_client, town):
    mr = MergeRequestFactory(
        bead__town=town,
        bead__status=BeadStatus.IN_PROGRESS,
        pr_url="https://github.com/acme/web/pull/1",
        blocker=Blocker.HUMAN_REVIEW,
    )
    settings.GITHUB_API_URL = "https://api.github.com"
    assert b"Approve (fake GitHub)" not in lead_client.get("/towns/acme/awaiting/").content
    settings.GITHUB_API_URL = "http://127.0.0.1:8765"
    page = lead_client.get("/towns/acme/awaiting/").content.decode()
    assert "Approve (fake GitHub)" in page
    assert f"/towns/acme/overrides/fake_pr_approve/{mr.pk}/" in page
