"""The overrides as admin actions: confirm page first, then the same audited services."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin import helpers
from django.utils import timezone

from beads.models import BeadEvent, BeadStatus, Blocker
from gastown.models import ConvoyStatus, TelemetryEvent
from tests.factories import ConvoyFactory, MergeRequestFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, db):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def waiting_mr(town):
    return MergeRequestFactory(
        bead__town=town,
        bead__status=BeadStatus.IN_PROGRESS,
        pr_url="https://github.com/acme/web/pull/5",
        blocker=Blocker.HUMAN_REVIEW,
        waiting_since=timezone.now(),
    )


def test_admin_action_asks_for_confirmation_before_acting(admin_client, town):
    mr = waiting_mr(town)
    response = admin_client.post(
        "/admin/beads/mergerequest/",
        {"action": "override_merge_request_clear_awaiting", helpers.ACTION_CHECKBOX_NAME: [mr.pk]},
    )
    assert response.status_code == 200
    assert b"Clear awaiting approval?" in response.content and b'name="reason"' in response.content
    mr.refresh_from_db()
    assert mr.awaiting_approval


def test_confirmed_admin_action_runs_the_audited_service(admin_client, town):
    mr = waiting_mr(town)
    response = admin_client.post(
        "/admin/beads/mergerequest/",
        {
            "action": "override_merge_request_clear_awaiting",
            helpers.ACTION_CHECKBOX_NAME: [mr.pk],
            "override_confirmed": "yes",
            "reason": "approved by phone",
        },
        follow=True,
    )
    assert b"1 done" in response.content
    mr.refresh_from_db()
    assert not mr.awaiting_approval
    event = BeadEvent.objects.get(bead=mr.bead, kind="override")
    assert event.actor == "user:root" and "approved by phone" in event.note


def test_admin_action_reports_refusals_and_goes_on(admin_client, town):
    failed = ConvoyFactory(town=town, status=ConvoyStatus.FAILED, landing_attempts=5)
    open_convoy = ConvoyFactory(town=town, status=ConvoyStatus.OPEN)
    response = admin_client.post(
        "/admin/gastown/convoy/",
        {
            "action": "override_convoy_retry_landing",
            helpers.ACTION_CHECKBOX_NAME: [failed.pk, open_convoy.pk],
            "override_confirmed": "yes",
        },
        follow=True,
    )
    assert b"1 done" in response.content and b"1 refused" in response.content
    failed.refresh_from_db()
    open_convoy.refresh_from_db()
    assert failed.status == ConvoyStatus.READY_TO_LAND
    assert open_convoy.status == ConvoyStatus.OPEN


def test_pausing_a_town_in_the_admin_is_a_warning_not_a_success(admin_client, town):
    response = admin_client.post(
        "/admin/gastown/town/",
        {
            "action": "override_town_pause",
            helpers.ACTION_CHECKBOX_NAME: [town.pk],
            "override_confirmed": "yes",
            "reason": "release freeze",
        },
        follow=True,
    )
    [message] = list(response.context["messages"])
    assert message.level_tag == "warning" and "is paused" in message.message
    town.refresh_from_db()
    assert town.paused

    resumed = admin_client.post(
        "/admin/gastown/town/",
        {
            "action": "override_town_resume",
            helpers.ACTION_CHECKBOX_NAME: [town.pk],
            "override_confirmed": "yes",
            "reason": "freeze over",
        },
        follow=True,
    )
    [message] = list(resumed.context["messages"])
    assert message.level_tag == "success"


def test_admin_action_needs_the_override_permission(client, town):
    from django.contrib.auth.models import Permission

    staff = UserFactory(username="staff", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_town", "change_town"])
    )
    client.force_login(staff)
    response = client.post(
        "/admin/gastown/town/",
        {
            "action": "override_town_pause",
            helpers.ACTION_CHECKBOX_NAME: [town.pk],
            "override_confirmed": "yes",
        },
        follow=True,
    )
    assert b"you need the permission" in response.content
    town.refresh_from_db()
    assert not town.paused
    assert not TelemetryEvent.objects.exists()


def test_the_unaudited_fail_actions_are_gone(admin_client):
    from django.contrib.admin import site
    from django.test import RequestFactory

    from beads.models import Bead, MergeRequest

    request = RequestFactory().get("/admin/")
    request.user = UserFactory(username="root2", is_staff=True, is_superuser=True)
    bead_actions = site._registry[Bead].get_actions(request)
    mr_actions = site._registry[MergeRequest].get_actions(request)
    assert "fail_beads" not in bead_actions and "fail_merge_requests" not in mr_actions
    assert "override_merge_request_fail" in bead_actions
    assert "override_merge_request_fail" in mr_actions


def test_fail_mr_from_the_bead_list_runs_the_override_and_refuses_other_beads(admin_client, town):
    from tests.factories import BeadFactory

    issue = BeadFactory(town=town, status=BeadStatus.IN_PROGRESS)
    bystander = waiting_mr(town)  # bead ids and merge request ids no longer line up
    mr = waiting_mr(town)
    response = admin_client.post(
        "/admin/beads/bead/",
        {
            "action": "override_merge_request_fail",
            helpers.ACTION_CHECKBOX_NAME: [mr.bead_id, issue.pk],
        },
    )
    assert b"Fail merge request?" in response.content and b'name="reason"' in response.content
    # Confirm with exactly what the page rendered.
    rendered = re.findall(
        rf'name="{helpers.ACTION_CHECKBOX_NAME}" value="(\d+)"', response.content.decode()
    )
    assert sorted(map(int, rendered)) == sorted([mr.bead_id, issue.pk])
    response = admin_client.post(
        "/admin/beads/bead/",
        {
            "action": "override_merge_request_fail",
            helpers.ACTION_CHECKBOX_NAME: rendered,
            "override_confirmed": "yes",
            "reason": "wrong approach",
        },
        follow=True,
    )
    bystander.bead.refresh_from_db()
    assert bystander.bead.status == BeadStatus.IN_PROGRESS
    assert b"1 done" in response.content and b"1 refused" in response.content
    assert b"not a merge request" in response.content
    mr.bead.refresh_from_db()
    issue.refresh_from_db()
    assert (mr.bead.status, mr.bead.failure_code) == (BeadStatus.FAILED, "failed_by_user")
    assert issue.status == BeadStatus.IN_PROGRESS
    resolved = TelemetryEvent.objects.get(name="pr.awaiting_approval_resolved")
    assert resolved.reason == "mr_failed"
    assert TelemetryEvent.objects.get(name="override.merge_request_fail").reason == (
        "wrong approach"
    )


def test_fail_mr_from_the_bead_list_needs_the_override_permission(client, town):
    from django.contrib.auth.models import Permission

    staff = UserFactory(username="staff", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_bead", "change_bead"])
    )
    client.force_login(staff)
    mr = waiting_mr(town)
    response = client.post(
        "/admin/beads/bead/",
        {
            "action": "override_merge_request_fail",
            helpers.ACTION_CHECKBOX_NAME: [mr.bead_id],
            "override_confirmed": "yes",
        },
        follow=True,
    )
    assert b"you need the permission" in response.content
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS


def test_admin_confirmation_says_which_merge_requests_the_table_refuses(admin_client, town):
    waiting = waiting_mr(town)
    ready = MergeRequestFactory(
        bead__town=town, bead__status=BeadStatus.IN_PROGRESS, blocker=Blocker.READY
    )
    response = admin_client.post(
        "/admin/beads/mergerequest/",
        {
            "action": "override_merge_request_clear_awaiting",
            helpers.ACTION_CHECKBOX_NAME: [waiting.pk, ready.pk],
        },
    )
    content = response.content.decode()
    assert content.count("will be refused") == 1
    assert "will be refused: The PR is not awaiting approval: nothing to clear." in content


def test_admin_fail_without_a_reason_shows_the_form_again_and_fails_nothing(admin_client, town):
    mr = waiting_mr(town)
    response = admin_client.post(
        "/admin/beads/mergerequest/",
        {
            "action": "override_merge_request_fail",
            helpers.ACTION_CHECKBOX_NAME: [mr.pk],
            "override_confirmed": "yes",
            "reason": "",
        },
    )
    assert response.status_code == 200
    assert b"a reason is required" in response.content
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS
