"""The demo end to end, in-process: seed_demo, the simulated agents, the reconciler and the
feedback check against the fake GitHub, with time moved by time-machine."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from beads.models import MergeRequest
from gastown.feedback.checks import check_prs
from gastown.models import Convoy, ConvoyStatus, TelemetryEvent
from gastown.reconciler.tick import reconcile_towns

pytestmark = pytest.mark.django_db


def _run(traveller, rounds):
    for _ in range(rounds):
        traveller.shift(timedelta(seconds=15))
        reconcile_towns()
        check_prs()


def test_demo_town_flows_to_waiting_prs_then_lands_after_approval(fake_github, settings):
    settings.GASTOWN_SIMULATED_AGENTS = True
    fake_github.create_repo(
        "demo/app",
        required_approvals=1,
        required_checks={"ci"},
        protected_branches={"main"},
        code_owners={"alice"},
    )
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        call_command("seed_demo", "--reset", stdout=StringIO())
        _run(traveller, 40)

        billing = Convoy.objects.get(title="Billing v2")
        search = Convoy.objects.get(title="Search revamp")
        sign_in = Convoy.objects.get(title="Faster sign-in")
        assert billing.status == ConvoyStatus.LANDING
        [landing] = MergeRequest.objects.filter(landing_convoy=billing)
        assert landing.awaiting_approval
        assert search.respawn_suppressed_since is not None
        assert MergeRequest.objects.filter(landing_convoy=search).count() == 1
        assert TelemetryEvent.objects.filter(name="reconciler.respawn_suppressed").count() == 1
        waiting = MergeRequest.objects.filter(source__convoy=sign_in, blocker="human_review")
        assert waiting.count() == 2
        assert not any(fake_github.merge_calls("demo/app", mr.pr_number) for mr in waiting)
        # The Telemetry page counts the waits Awaiting approval lists: the three above and the
        # PR of Search revamp's suppressed landing.
        detected = TelemetryEvent.objects.filter(name="pr.awaiting_approval_detected")
        assert detected.count() == 4
        assert all(event.data["reviewers"] == ["alice"] for event in detected)
        # Who is waited on: the code owner GitHub asked for a review.
        assert {tuple(mr.requested_reviewers) for mr in [landing, *waiting]} == {("alice",)}

        for mr in [landing, *waiting, search.suppressed_landing_mr]:
            fake_github.approve("demo/app", mr.pr_number)
        _run(traveller, 12)

    for convoy in (billing, search, sign_in):
        convoy.refresh_from_db()
        assert convoy.status == ConvoyStatus.LANDED, convoy.title
    search_pr = MergeRequest.objects.filter(landing_convoy=search).first().pr_number
    assert len(fake_github.merge_calls("demo/app", search_pr)) == 1
    assert search.landing_attempts == 1
