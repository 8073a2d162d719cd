"""A done report over HTTP reaches GitHub: the reconciler watches the reported PR and the
feedback check (the real scm client against the fake GitHub) acts on it."""

from __future__ import annotations

import pytest
from django.utils import timezone

from beads.models import Bead, BeadStatus, Blocker, MergeRequest
from gastown.feedback.checks import check_prs
from gastown.reconciler import reconcile_town
from tests.factories import AgentFactory, BeadFactory

pytestmark = pytest.mark.django_db

REPO = "acme/web"


@pytest.fixture
def watching_town(town, rig):
    town.code_review = False
    town.auto_merge = True
    town.auto_merge_delay_minutes = 0
    town.save()
    return town


def report_done_over_http(api, fake_github, rig, pr) -> MergeRequest:
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
    agent = AgentFactory(town=rig.town, rig=rig, name="cat-1", hooked_bead=bead)
    Bead.objects.filter(pk=bead.pk).update(assignee=agent)
    response = api.post(
        "/agents/cat-1/done",
        {"bead": bead.pk, "branch": pr.head, "pr_url": fake_github.pr_url(REPO, pr.number)},
    )
    assert response.status_code == 201, response.json()
    return MergeRequest.objects.select_related("bead", "source").get(
        pk=response.json()["merge_request"]["id"]
    )


def tick_and_check(town) -> None:
    now = timezone.now()
    reconcile_town(town, now=now)
    check_prs(town_ids=[town.pk], now=now)


def test_a_reported_pr_that_is_ready_is_merged_once(api, fake_github, watching_town, rig):
    fake_github.create_repo(REPO)
    pr = fake_github.create_pr(REPO, head="polecat/login", base="main")
    mr = report_done_over_http(api, fake_github, rig, pr)
    assert (mr.pr_repo, mr.pr_number) == (REPO, pr.number)

    tick_and_check(watching_town)
    tick_and_check(watching_town)

    assert len(fake_github.merge_calls(REPO, pr.number)) == 1
    assert fake_github.pull(REPO, pr.number).merged
    mr = MergeRequest.objects.select_related("bead", "source").get(pk=mr.pk)
    assert mr.bead.status == BeadStatus.CLOSED
    assert mr.source.status == BeadStatus.CLOSED
    assert mr.last_checked_at is not None


def test_a_reported_pr_waiting_on_a_reviewer_is_watched_not_merged(
    api, fake_github, watching_town, rig
):
    fake_github.create_repo(REPO, required_approvals=1)
    pr = fake_github.create_pr(REPO, head="polecat/login", base="main")
    mr = report_done_over_http(api, fake_github, rig, pr)

    tick_and_check(watching_town)

    mr = MergeRequest.objects.select_related("bead").get(pk=mr.pk)
    assert mr.bead.status == BeadStatus.IN_PROGRESS
    assert mr.last_checked_at is not None
    assert (mr.blocker, mr.awaiting_approval) == (Blocker.HUMAN_REVIEW, True)
    assert fake_github.merge_calls(REPO, pr.number) == []
