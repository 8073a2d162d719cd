"""The pages and the override views, through Django's test client."""

from __future__ import annotations

import sys
import types
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from beads.models import BeadEvent, BeadStatus, BeadType, Blocker
from gastown.models import ConvoyStatus, TelemetryEvent
from tests.factories import (
    BeadEventFactory,
    BeadFactory,
    ConvoyFactory,
    MergeRequestFactory,
    ReconcilerTickFactory,
    RigFactory,
    TelemetryEventFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def waiting(town, rig, *, minutes=60, number=7, **kwargs):
    return MergeRequestFactory(
        bead__town=town,
        bead__rig=rig,
        bead__status=BeadStatus.IN_PROGRESS,
        pr_url=f"https://github.com/{rig.repo}/pull/{number}",
        blocker=Blocker.HUMAN_REVIEW,
        review_decision="REVIEW_REQUIRED",
        merge_state_status="BLOCKED",
        checks_state="SUCCESS",
        requested_reviewers=["alice"],
        waiting_since=timezone.now() - timedelta(minutes=minutes),
        **kwargs,
    )


# --- pages ------------------------------------------------------------------------------


def test_awaiting_approval_lists_oldest_wait_first_with_pr_link(lead_client, town, rig):
    newer = waiting(town, rig, minutes=5, number=2)
    older = waiting(town, rig, minutes=300, number=1)
    content = lead_client.get("/towns/acme/awaiting/").content.decode()
    assert content.index(older.pr_url) < content.index(newer.pr_url)
    assert f'href="{older.pr_url}" rel="noopener noreferrer"' in content
    assert "alice" in content and ">5 h</time>" in content


def test_awaiting_approval_filters_by_rig_and_convoy(lead_client, town, rig):
    other_rig = RigFactory(town=town, name="api", repo="acme/api")
    convoy = ConvoyFactory(town=town, rig=rig, title="Checkout")
    in_convoy = waiting(town, rig, number=1, bead__convoy=convoy)
    other = waiting(town, other_rig, number=2)
    by_rig = lead_client.get(f"/towns/acme/awaiting/?rig={other_rig.pk}").content.decode()
    assert other.pr_url in by_rig and in_convoy.pr_url not in by_rig
    by_convoy = lead_client.get(f"/towns/acme/awaiting/?convoy={convoy.pk}").content.decode()
    assert in_convoy.pr_url in by_convoy and other.pr_url not in by_convoy


def test_awaiting_approval_has_an_empty_state(lead_client):
    assert (
        b"No pull request is waiting for approval"
        in lead_client.get("/towns/acme/awaiting/").content
    )


def test_awaiting_approval_hides_other_towns_prs(lead_client, town, rig):
    foreign_rig = RigFactory(name="secret", repo="other/secret")
    foreign = waiting(foreign_rig.town, foreign_rig, number=9)
    assert foreign.pr_url.encode() not in lead_client.get("/towns/acme/awaiting/").content


def test_htmx_refresh_returns_only_the_fragment(lead_client, town, rig):
    mr = waiting(town, rig)
    full = lead_client.get("/towns/acme/awaiting/")
    assert b"<html" in full.content and b'hx-trigger="every 15s"' in full.content
    fragment = lead_client.get("/towns/acme/awaiting/", HTTP_HX_REQUEST="true")
    assert b"<html" not in fragment.content
    assert fragment.content.lstrip().startswith(b'<div id="awaiting-rows"')
    assert mr.pr_url.encode() in fragment.content
    assert "HX-Request" in fragment["Vary"]


@pytest.mark.parametrize(
    "path",
    ["/towns/acme/", "/towns/acme/convoys/", "/towns/acme/telemetry/", "/towns/acme/reconciler/"],
)
def test_every_list_page_refreshes_a_fragment(lead_client, path):
    full = lead_client.get(path)
    fragment = lead_client.get(path, HTTP_HX_REQUEST="true")
    assert full.status_code == fragment.status_code == 200
    assert b"hx-trigger" in full.content
    assert b"<html" not in fragment.content and b"hx-get" in fragment.content


def test_overview_counts_the_things_a_team_lead_watches(lead_client, town, rig):
    now = timezone.now()
    waiting(town, rig, minutes=120)
    BeadFactory(town=town, status=BeadStatus.FAILED, closed_at=now - timedelta(hours=2))
    BeadFactory(town=town, status=BeadStatus.FAILED, closed_at=now - timedelta(days=3))
    BeadFactory(town=town, type=BeadType.ESCALATION, title="Token lacks repo scope")
    ConvoyFactory(town=town, title="Held convoy", respawn_suppressed_since=now)
    TelemetryEventFactory(town=town, name="reconciler.respawn_suppressed")
    ReconcilerTickFactory(town=town, started_at=now - timedelta(seconds=30), actions={"b1": 2})
    o = lead_client.get("/towns/acme/").context["o"]
    assert o.awaiting_count == 1
    assert o.failures_24h == 1
    assert o.open_escalations == 1
    assert [c.title for c in o.suppressed_now] == ["Held convoy"]
    assert o.suppressed_today == 1
    assert o.workers_alive is True
    content = lead_client.get("/towns/acme/").content.decode()
    assert "Token lacks repo scope" in content and "b1</span>: 2" in content


def test_a_failure_later_made_good_leaves_the_red_card(lead_client, town, rig):
    """A failed MR whose issue a later MR merged, and a failed bead of a convoy that landed,
    count as made good: the red card counts only failures whose work is still not done."""
    now = timezone.now()
    landed = ConvoyFactory(town=town, rig=rig, status=ConvoyStatus.LANDED, landed_at=now)
    BeadFactory(
        town=town, convoy=landed, status=BeadStatus.FAILED, closed_at=now - timedelta(hours=3)
    )
    issue = BeadFactory(town=town, rig=rig, status=BeadStatus.CLOSED, closed_at=now)
    MergeRequestFactory(
        bead__town=town,
        bead__status=BeadStatus.FAILED,
        bead__closed_at=now - timedelta(hours=2),
        source=issue,
    )
    MergeRequestFactory(
        bead__town=town,
        bead__status=BeadStatus.CLOSED,
        source=issue,
        merged_at=now - timedelta(minutes=5),
    )
    standing = BeadFactory(town=town, title="Flaky deploy", status=BeadStatus.FAILED, closed_at=now)

    response = lead_client.get("/towns/acme/")
    o = response.context["o"]
    assert o.failures_24h == 1
    assert o.failures_made_good == 2
    assert [b.pk for b in o.recent_failures] == [standing.pk]
    assert (o.merged_24h, o.landed_24h) == (1, 1)
    content = response.content.decode()
    assert '<div class="card alert" id="failures-card">' in content
    assert "2 more made good since" in content
    assert "PR merged in the last 24 h" in content and "1 convoy landed" in content


def test_no_red_card_once_every_failure_was_made_good(lead_client, town, rig):
    now = timezone.now()
    landed = ConvoyFactory(town=town, rig=rig, status=ConvoyStatus.LANDED, landed_at=now)
    BeadFactory(town=town, convoy=landed, status=BeadStatus.FAILED, closed_at=now)
    content = lead_client.get("/towns/acme/").content.decode()
    assert '<div class="card" id="failures-card">' in content
    assert "Nothing failed in the last 24 hours that is still to be done" in content


def test_overview_says_workers_are_stale_when_the_last_tick_is_old(lead_client, town):
    ReconcilerTickFactory(town=town, started_at=timezone.now() - timedelta(minutes=10))
    response = lead_client.get("/towns/acme/")
    assert response.context["o"].workers_alive is False
    assert b"stale since" in response.content


def test_overview_of_an_empty_town_explains_itself(lead_client):
    content = lead_client.get("/towns/acme/").content
    assert b"No reconciler tick recorded yet" in content
    assert b"No landing respawn is suppressed" in content


def test_convoys_show_progress_landing_and_suppression(lead_client, town, rig):
    convoy = ConvoyFactory(town=town, rig=rig, status=ConvoyStatus.LANDING, landing_attempts=2)
    BeadFactory.create_batch(2, town=town, rig=rig, convoy=convoy, status=BeadStatus.CLOSED)
    BeadFactory(town=town, rig=rig, convoy=convoy, status=BeadStatus.IN_REVIEW)
    landing = waiting(town, rig, landing_convoy=convoy)
    convoy.respawn_suppressed_since = timezone.now()
    convoy.suppressed_pr_url = landing.pr_url
    convoy.suppressed_attempt = 3
    convoy.save()
    content = lead_client.get("/towns/acme/convoys/").content.decode()
    assert "2 / 3" in content
    assert f"bd-{landing.bead_id}" in content
    assert "needs approval from" in content
    assert "attempt 3 not made" in content
    assert "End suppression" in content
    assert f'target="_blank">{landing.pr_repo}#{landing.pr_number}</a>' in content


def test_a_landed_convoy_shows_the_landing_mr_that_merged(lead_client, town, rig):
    convoy = ConvoyFactory(town=town, rig=rig, status=ConvoyStatus.LANDED)
    merged = MergeRequestFactory(
        bead__town=town,
        bead__rig=rig,
        bead__status=BeadStatus.CLOSED,
        landing_convoy=convoy,
        merged_at=timezone.now(),
        blocker="merged",
    )
    content = lead_client.get("/towns/acme/convoys/?status=landed").content.decode()
    assert f"bd-{merged.bead_id}" in content


def test_bead_page_shows_its_pr_and_one_timeline_newest_first(lead_client, town, rig):
    mr = waiting(town, rig)
    old = BeadEventFactory(bead=mr.bead, note="first note")
    BeadEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1))
    TelemetryEventFactory(town=town, bead=mr.bead, name="pr.awaiting_approval_detected")
    content = lead_client.get(f"/towns/acme/beads/{mr.bead_id}/").content.decode()
    assert mr.pr_url in content and "REVIEW_REQUIRED" in content
    assert content.index("pr.awaiting_approval_detected") < content.index("first note")


def test_bead_timeline_reads_durations_and_keeps_raw_values_in_details(lead_client, town, rig):
    mr = waiting(town, rig)
    TelemetryEventFactory(
        town=town,
        bead=mr.bead,
        name="pr.awaiting_approval_resolved",
        label="APPROVED",
        reason="approved",
        duration_ms=2_820_000,
    )
    content = lead_client.get(f"/towns/acme/beads/{mr.bead_id}/").content.decode()
    assert "<strong>Wait on a person ended: approved</strong>" in content
    assert "lasted 47 min" in content
    details = content[content.index("<summary>Details</summary>") :]
    assert "event=pr.awaiting_approval_resolved, label=APPROVED, reason=approved" in details
    assert "duration_ms=2820000" in details


def test_bead_of_another_town_is_not_found(lead_client):
    foreign = BeadFactory()
    assert lead_client.get(f"/towns/acme/beads/{foreign.pk}/").status_code == 404


def test_telemetry_charts_and_filters(lead_client, town, rig):
    TelemetryEventFactory(town=town, rig=rig, name="pr.merged", label="squash")
    TelemetryEventFactory(
        town=town, name="pr.awaiting_approval_resolved", duration_ms=2 * 3600 * 1000
    )
    response = lead_client.get("/towns/acme/telemetry/")
    charts = {c["title"]: c for c in response.context["charts"]}
    assert charts["Merges, per day"]["total"] == 1
    waits = charts["How long PRs waited (resolved waits, last 14 days)"]
    assert ("1-4 h", [1]) in waits["rows"]
    assert b"<svg" in response.content
    filtered = lead_client.get(f"/towns/acme/telemetry/?name=pr.merged&rig={rig.pk}")
    assert [e.name for e in filtered.context["page"].object_list] == ["pr.merged"]
    today = timezone.now().date()
    future = lead_client.get(f"/towns/acme/telemetry/?since={today + timedelta(days=1)}")
    assert b"No telemetry event matches" in future.content


def test_telemetry_pages_newest_first_without_counting(lead_client, town):
    TelemetryEvent.objects.bulk_create(
        TelemetryEvent(town=town, name="pr.merged", label=f"n{i}") for i in range(51)
    )
    first = lead_client.get("/towns/acme/telemetry/?name=pr.merged")
    assert len(first.context["page"].object_list) == 50
    assert b"Older" in first.content and b"Newer" not in first.content
    second = lead_client.get("/towns/acme/telemetry/?name=pr.merged&page=2")
    assert len(second.context["page"].object_list) == 1
    assert b"Newer" in second.content and b"Older" not in second.content
    assert b"name=pr.merged&amp;page=1" in second.content
    assert lead_client.get("/towns/acme/telemetry/?page=x").context["page"].number == 1


def test_telemetry_rejects_a_backwards_date_range(lead_client):
    response = lead_client.get("/towns/acme/telemetry/?since=2026-02-02&until=2026-01-01")
    assert b"The start date is after the end date" in response.content


def test_reconciler_page_says_when_the_dry_run_is_unavailable(lead_client, monkeypatch):
    monkeypatch.setitem(sys.modules, "gastown.reconciler", types.ModuleType("gastown.reconciler"))
    response = lead_client.get("/towns/acme/reconciler/?dry_run=1")
    assert response.status_code == 200
    assert b"Dry run unavailable" in response.content


def _fake_dry_run(monkeypatch, calls):
    class Action:
        kind = "dispatch"

        def describe(self):
            return "dispatch bead #4 to <polecat-1>"

    def dry_run(town, now=None):
        calls.append(town)
        return [Action()]

    module = types.ModuleType("gastown.reconciler")
    module.dry_run = dry_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gastown.reconciler", module)


def test_reconciler_page_lists_the_dry_run_actions_when_asked(lead_client, town, monkeypatch):
    calls: list = []
    _fake_dry_run(monkeypatch, calls)
    ReconcilerTickFactory(town=town, actions={"dispatch": 1})
    content = lead_client.get("/towns/acme/reconciler/?dry_run=1").content
    assert b"dispatch bead #4 to &lt;polecat-1&gt;" in content
    assert b"dispatch</span>: 1" in content
    assert len(calls) == 1


def test_reconciler_page_shows_the_last_tick_without_a_dry_run(lead_client, town, monkeypatch):
    calls: list = []
    _fake_dry_run(monkeypatch, calls)
    now = timezone.now()
    ReconcilerTickFactory(town=town, started_at=now - timedelta(minutes=1), planned=9)
    ReconcilerTickFactory(
        town=town,
        started_at=now,
        actions={"CloseBead": 1},
        planned=2,
        plan=[
            {"kind": "CloseBead", "text": "close bd-7: <merged>", "applied": True},
            {"kind": "CloseBead", "text": "close bd-8: merged", "applied": False},
        ],
    )
    content = lead_client.get("/towns/acme/reconciler/").content.decode()
    assert calls == []
    assert "planned 2 actions and applied 1; 1 skipped" in content
    assert "close bd-7: &lt;merged&gt;" in content
    assert "Run a dry run now" in content
    # Kinds read as words, the class name (what the counts are keyed by) as the tooltip.
    assert '<span title="CloseBead">close bead</span>: 1' in content
    assert '<span title="CloseBead">close bead</span></span>' in content


def test_reconciler_page_without_ticks_says_so(lead_client):
    content = lead_client.get("/towns/acme/reconciler/").content
    assert b"No tick recorded yet." in content


# --- safety -----------------------------------------------------------------------------


def test_titles_and_bodies_are_escaped(lead_client, town, rig):
    evil = "<script>alert(1)</script>"
    mr = waiting(town, rig, bead__title=evil, bead__body=evil)
    convoy = ConvoyFactory(town=town, title=evil, respawn_suppressed_since=timezone.now())
    BeadEventFactory(bead=mr.bead, note=evil)
    BeadFactory(town=town, type=BeadType.ESCALATION, title=evil)
    TelemetryEventFactory(town=town, name="pr.merged", label=evil, reason=evil, convoy=convoy)
    for path in [
        "/towns/acme/",
        "/towns/acme/awaiting/",
        "/towns/acme/convoys/",
        f"/towns/acme/beads/{mr.bead_id}/",
        "/towns/acme/telemetry/",
        f"/towns/acme/overrides/merge_request_clear_awaiting/{mr.pk}/",
        f"/towns/acme/overrides/convoy_close/{convoy.pk}/",
    ]:
        content = lead_client.get(path).content
        assert b"<script>alert" not in content, path
        assert b"&lt;script&gt;" in content, path


def test_town_secrets_are_never_rendered(lead_client, town):
    town.set_github_token("ghp_supersecret123")
    town.github_token_env = "ACME_TOKEN"
    town.save()
    for path in ["/", "/towns/acme/", "/towns/acme/telemetry/", "/towns/acme/reconciler/"]:
        content = lead_client.get(path).content
        assert b"ghp_supersecret123" not in content
        assert town.github_token_encrypted.encode() not in content


def test_unknown_page_renders_the_helpful_404(lead_client):
    response = lead_client.get("/towns/acme/nothing-here/")
    assert response.status_code == 404
    assert b"Back to your towns" in response.content
    assert b"Traceback" not in response.content


def test_server_error_renders_the_500_template(lead, settings):
    settings.ROOT_URLCONF = "tests.dashboard.urls_boom"
    client = Client(raise_request_exception=False)
    client.force_login(lead)
    response = client.get("/boom/")
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content
    assert b"Traceback" not in response.content and b"RuntimeError" not in response.content


# --- overrides through the views --------------------------------------------------------


def test_override_asks_for_confirmation_and_changes_nothing_on_get(lead_client, town, rig):
    mr = waiting(town, rig)
    response = lead_client.get(f"/towns/acme/overrides/merge_request_clear_awaiting/{mr.pk}/")
    assert response.status_code == 200
    assert b"Clear awaiting approval?" in response.content and b'name="reason"' in response.content
    mr.refresh_from_db()
    assert mr.awaiting_approval


def test_confirmed_override_runs_audits_and_reports(lead_client, town, rig):
    mr = waiting(town, rig)
    response = lead_client.post(
        f"/towns/acme/overrides/merge_request_clear_awaiting/{mr.pk}/",
        {"reason": "approved in person", "next": "/towns/acme/awaiting/"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/towns/acme/awaiting/"
    assert b"no longer marked as awaiting approval" in response.content
    mr.refresh_from_db()
    assert not mr.awaiting_approval
    event = BeadEvent.objects.get(bead=mr.bead, kind="override")
    assert event.user.username == "lead" and "approved in person" in event.note


@pytest.mark.parametrize("reason", ["", "   "])
def test_failing_an_mr_asks_for_a_reason_and_does_nothing_without_one(
    lead_client, town, rig, reason
):
    mr = waiting(town, rig)
    url = f"/towns/acme/overrides/merge_request_fail/{mr.pk}/"
    form = lead_client.get(url).content.decode()
    assert "Reason (required" in form and "required" in form.split('name="reason"')[1][:200]
    response = lead_client.post(url, {"reason": reason})
    assert response.status_code == 200, "the form again, not a redirect"
    assert "a reason is required" in response.content.decode()
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS
    assert not TelemetryEvent.objects.filter(name="override.merge_request_fail").exists()


def test_a_destructive_override_done_is_a_warning_not_good_news(lead_client, town, rig):
    response = lead_client.post(
        "/towns/acme/overrides/town_pause/", {"reason": "incident"}, follow=True
    )
    content = response.content.decode()
    assert '<li class="warning">' in content and "is paused" in content
    assert '<li class="success">' not in content


def test_override_buttons_offer_one_action_and_the_rest_in_a_menu(lead_client, town, rig):
    waiting(town, rig)
    content = lead_client.get("/towns/acme/awaiting/").content.decode()
    row = content[content.index("<tbody>") : content.index("</tbody>")]
    before_menu, menu = row.split('<details class="more">')
    assert ">Re-check now</a>" in before_menu
    assert ">Clear awaiting approval</a>" in menu and ">Fail merge request</a>" in menu


def test_refused_override_says_why(lead_client, town, rig):
    mr = waiting(town, rig)
    response = lead_client.post(
        f"/towns/acme/overrides/merge_request_merge_now/{mr.pk}/", {"reason": ""}, follow=True
    )
    assert b"waiting on a human: cannot merge" in response.content
    mr.refresh_from_db()
    assert mr.merge_requested_at is None


def test_override_without_its_permission_is_forbidden(client, town, rig):
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    town.member_users.add(viewer)
    client.force_login(viewer)
    mr = waiting(town, rig)
    url = f"/towns/acme/overrides/merge_request_clear_awaiting/{mr.pk}/"
    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "x"}).status_code == 403
    mr.refresh_from_db()
    assert mr.awaiting_approval
    assert b"Clear awaiting" not in client.get("/towns/acme/awaiting/").content


def test_override_needs_the_csrf_token(lead, town, rig):
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    mr = waiting(town, rig)
    response = client.post(f"/towns/acme/overrides/merge_request_clear_awaiting/{mr.pk}/")
    assert response.status_code == 403
    mr.refresh_from_db()
    assert mr.awaiting_approval


def test_override_on_another_towns_object_is_not_found(lead_client):
    foreign_rig = RigFactory(repo="other/x")
    mr = waiting(foreign_rig.town, foreign_rig)
    url = f"/towns/acme/overrides/merge_request_clear_awaiting/{mr.pk}/"
    assert lead_client.post(url).status_code == 404


def test_override_never_redirects_off_site(lead_client, town, rig):
    mr = waiting(town, rig)
    response = lead_client.post(
        f"/towns/acme/overrides/merge_request_recheck/{mr.pk}/",
        {"next": "https://evil.example/"},
    )
    assert response["Location"] == f"/towns/acme/beads/{mr.bead_id}/"


def test_unknown_override_is_not_found(lead_client):
    assert lead_client.get("/towns/acme/overrides/delete_everything/").status_code == 404


def test_town_pause_button_on_the_overview(lead_client, town):
    content = lead_client.get("/towns/acme/").content.decode()
    assert "/towns/acme/overrides/town_pause/" in content
    lead_client.post("/towns/acme/overrides/town_pause/", {"reason": "incident"})
    town.refresh_from_db()
    assert town.paused
    assert TelemetryEvent.objects.get(name="override.town_pause").reason == "incident"
    assert "/towns/acme/overrides/town_resume/" in lead_client.get("/towns/acme/").content.decode()


def test_terminal_bead_offers_no_redispatch(lead_client, town):
    bead = BeadFactory(town=town, status=BeadStatus.CLOSED)
    content = lead_client.get(f"/towns/acme/beads/{bead.pk}/").content
    assert b"bead_redispatch" not in content
    response = lead_client.post(f"/towns/acme/overrides/bead_redispatch/{bead.pk}/", follow=True)
    assert b"never reopened" in response.content
    bead.refresh_from_db()
    assert bead.status == BeadStatus.CLOSED


def test_awaiting_page_names_the_convoy_of_an_issue_mr_and_filters_by_it(lead_client, town, rig):
    from django.utils import timezone

    from tests.factories import BeadFactory, ConvoyFactory, MergeRequestFactory

    convoy = ConvoyFactory(town=town, rig=rig, title="Billing v2")
    issue = BeadFactory(town=town, rig=rig, convoy=convoy, status="in_review")
    MergeRequestFactory(
        bead__town=town,
        bead__rig=rig,
        source=issue,
        pr_url="https://github.com/a/b/pull/9",
        blocker="human_review",
        waiting_since=timezone.now(),
    )
    url = f"/towns/{town.slug}/awaiting/"
    assert "Billing v2" in lead_client.get(url).content.decode().split("<tbody")[1]
    assert "pull/9" in lead_client.get(f"{url}?convoy={convoy.pk}").content.decode()
    other = ConvoyFactory(town=town, rig=rig)
    assert "pull/9" not in lead_client.get(f"{url}?convoy={other.pk}").content.decode()


def test_awaiting_page_lists_the_pr_of_a_suppressed_landing(lead_client, town, rig):
    from django.utils import timezone

    from beads.audit import Actor
    from beads.merge_requests import merge_request_transition
    from tests.factories import ConvoyFactory, MergeRequestFactory

    convoy = ConvoyFactory(town=town, rig=rig, title="Search revamp", status="landing")
    held = MergeRequestFactory(
        bead__town=town,
        bead__rig=rig,
        landing_convoy=convoy,
        pr_url="https://github.com/a/b/pull/11",
        blocker="human_review",
        waiting_since=timezone.now(),
    )
    stale = MergeRequestFactory(
        bead__town=town,
        bead__rig=rig,
        pr_url="https://github.com/a/b/pull/12",
        blocker="human_review",
        waiting_since=timezone.now(),
    )
    for mr in (held, stale):
        merge_request_transition(merge_request=mr, transition="fail", actor=Actor("user:x"))
    convoy.respawn_suppressed_since = timezone.now()
    convoy.suppressed_landing_mr = held
    convoy.save()
    page = lead_client.get(f"/towns/{town.slug}/awaiting/").content.decode()
    assert "pull/11" in page and "respawn suppressed" in page
    assert f"/overrides/merge_request_recheck/{held.pk}/" in page, "re-checking it is allowed"
    assert "pull/12" not in page, "a failed MR nobody holds is not waiting any more"


def test_a_closed_convoys_leftover_suppression_is_neither_listed_nor_awaited(
    lead_client, town, rig
):
    """Rows closed before convoy_close ended suppressions: the pages ignore them."""
    from beads.audit import Actor
    from beads.merge_requests import merge_request_transition

    convoy = ConvoyFactory(town=town, rig=rig, title="Dropped", status=ConvoyStatus.CLOSED)
    held = waiting(town, rig, number=13, landing_convoy=convoy)
    merge_request_transition(merge_request=held, transition="fail", actor=Actor("user:x"))
    convoy.respawn_suppressed_since = timezone.now()
    convoy.suppressed_landing_mr = held
    convoy.save()
    o = lead_client.get("/towns/acme/").context["o"]
    assert o.suppressed_now == [] and o.awaiting_count == 0
    assert "pull/13" not in lead_client.get("/towns/acme/awaiting/").content.decode()


def test_failed_mr_offers_no_clear_awaiting(lead_client, town, rig):
    from beads.audit import Actor
    from beads.merge_requests import merge_request_transition

    mr = waiting(town, rig)
    page = lead_client.get(f"/towns/acme/beads/{mr.bead_id}/").content.decode()
    assert f"/overrides/merge_request_clear_awaiting/{mr.pk}/" in page
    merge_request_transition(merge_request=mr, transition="fail", actor=Actor("user:x"))
    page = lead_client.get(f"/towns/acme/beads/{mr.bead_id}/").content.decode()
    assert f"/overrides/merge_request_clear_awaiting/{mr.pk}/" not in page
