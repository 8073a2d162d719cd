"""The dashboard in a real browser: Debian's Chromium driven by Playwright against
pytest-django's live server. Screenshots of every page go to screenshots/ (gitignored); the
README's, in docs/, come from the running demo (scripts/screenshots).

Chromium missing? Run scripts/ensure-chromium. These tests fail (never skip) without it.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from django.utils import timezone

from beads.models import BeadEvent, BeadStatus, BeadType, Blocker
from gastown.management.commands.create_team_lead_group import team_lead_group_sync
from gastown.models import ConvoyStatus, MergeMode
from tests.factories import (
    BeadFactory,
    ConvoyFactory,
    MergeRequestFactory,
    ReconcilerTickFactory,
    RigFactory,
    TelemetryEventFactory,
    TownFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots"


@pytest.fixture
def demo_town():
    """A town with something on every page, prepared before the browser starts."""
    now = timezone.now()
    group, _ = team_lead_group_sync()
    lead = UserFactory(username="lead")
    lead.groups.add(group)
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    town = TownFactory(slug="acme", name="Acme platform team")
    town.member_users.add(lead, viewer)
    TownFactory(slug="other", name="Other team").member_users.add(UserFactory(username="them"))
    web = RigFactory(town=town, name="web", repo="acme/web")
    api = RigFactory(town=town, name="api", repo="acme/api")

    checkout = ConvoyFactory(
        town=town, rig=web, title="Checkout redesign", status=ConvoyStatus.LANDING
    )
    BeadFactory.create_batch(4, town=town, rig=web, convoy=checkout, status=BeadStatus.CLOSED)
    landing = MergeRequestFactory(
        bead__town=town,
        bead__rig=web,
        bead__title="Land Checkout redesign",
        bead__status=BeadStatus.IN_PROGRESS,
        landing_convoy=checkout,
        branch=checkout.feature_branch,
        pr_url="https://github.com/acme/web/pull/412",
        blocker=Blocker.HUMAN_REVIEW,
        review_decision="REVIEW_REQUIRED",
        merge_state_status="BLOCKED",
        checks_state="SUCCESS",
        requested_reviewers=["alice", "platform-leads"],
        waiting_since=now - timedelta(hours=26),
    )
    search = ConvoyFactory(
        town=town,
        rig=api,
        title="Search API v2",
        status=ConvoyStatus.LANDING,
        landing_attempts=2,
        respawn_suppressed_since=now - timedelta(hours=3),
        suppressed_pr_url="https://github.com/acme/api/pull/88",
        suppressed_attempt=3,
    )
    BeadFactory.create_batch(2, town=town, rig=api, convoy=search, status=BeadStatus.CLOSED)
    ConvoyFactory(
        town=town,
        rig=api,
        title="Rate limiter",
        status=ConvoyStatus.FAILED,
        landing_attempts=5,
        failure_reason="landing_mr_exhausted",
    )
    ConvoyFactory(town=town, rig=None, title="Docs refresh", merge_mode=MergeMode.REVIEW_AND_MERGE)
    fix = BeadFactory(town=town, rig=api, title="Fix pagination off-by-one")
    MergeRequestFactory(
        bead__town=town,
        bead__rig=api,
        bead__title="Fix pagination off-by-one",
        bead__status=BeadStatus.IN_PROGRESS,
        source=fix,
        pr_url="https://github.com/acme/api/pull/91",
        blocker=Blocker.HUMAN_REVIEW,
        review_decision="REVIEW_REQUIRED",
        merge_state_status="BLOCKED",
        checks_state="SUCCESS",
        requested_reviewers=["bob"],
        waiting_since=now - timedelta(minutes=40),
    )
    BeadFactory(
        town=town, type=BeadType.ESCALATION, title="acme/web#412 waits on alice for over 24 h"
    )
    BeadFactory(town=town, status=BeadStatus.FAILED, failure_code="orphaned_review", closed_at=now)
    for day in range(10):
        at = now - timedelta(days=day)
        for _ in range(day % 4 + 1):
            for name in ("pr.awaiting_approval_detected", "pr.merged"):
                event = TelemetryEventFactory(town=town, rig=web, name=name, label="squash")
                event.created_at = at
                event.save(update_fields=["created_at"])
        resolved = TelemetryEventFactory(
            town=town,
            name="pr.awaiting_approval_resolved",
            reason="approved",
            duration_ms=(day + 1) * 47 * 60_000,
        )
        resolved.created_at = at
        resolved.save(update_fields=["created_at"])
    TelemetryEventFactory(town=town, name="reconciler.respawn_suppressed", convoy=search)
    # Long unbroken values once made the events table wider than a 1440 px screen.
    TelemetryEventFactory(
        town=town,
        rig=web,
        name="pr.check_failed",
        reason="GraphQL error: " + "x" * 200,
        data={"pr_url": "https://github.com/acme/web/pull/412", "head_sha": "a" * 40 * 3},
    )
    TelemetryEventFactory(town=town, name="pr.merge_refused", reason="Review required")
    for seconds in (20, 80, 140):
        ReconcilerTickFactory(
            town=town,
            started_at=now - timedelta(seconds=seconds),
            duration_ms=35,
            actions={"watch_pr": 2, "dispatch": 1},
        )
    return {"town": town, "landing": landing, "lead": lead, "viewer": viewer}


@pytest.fixture
def page(live_server, monkeypatch) -> Iterator:
    # Playwright's sync API runs an event loop in this thread; the assertions read the
    # database after browser steps, which Django would otherwise refuse inside a running
    # loop. Allowed for these tests only, not for the rest of the session.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not CHROMIUM.exists():
        pytest.fail(
            "Chromium is missing at /usr/bin/chromium: run scripts/ensure-chromium "
            "(apt-get install chromium) before the browser tests."
        )
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        page.set_default_timeout(10_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # While Playwright's loop runs, asgiref keeps this thread's database connections
            # in a context variable, not in the thread-local that pytest-django closes before
            # dropping the test database (on PostgreSQL: "being accessed by other users").
            connections.close_all()


def sign_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_load_state()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_team_lead_clears_a_wait_and_sees_the_audit_on_the_bead_page(demo_town, live_server, page):
    landing = demo_town["landing"]
    sign_in(page, live_server, "lead")
    page.goto(f"{live_server.url}/towns/acme/awaiting/")
    row = page.locator("tr", has_text="Land Checkout redesign")
    assert row.locator("a[href='https://github.com/acme/web/pull/412']").count() == 1
    row.locator("details.more summary").click()  # secondary overrides sit in a menu
    row.get_by_role("link", name="Clear awaiting approval").click()
    page.wait_for_load_state()
    assert "Clear awaiting approval?" in page.content()
    page.fill("#id_reason", "alice approved in the meeting")
    shot(page, "override-confirm")
    page.get_by_role("button", name="Clear awaiting approval").click()
    page.wait_for_load_state()
    assert page.url.endswith("/towns/acme/awaiting/")
    message = page.locator(".messages .success")
    assert "no longer marked as awaiting approval" in message.inner_text()
    assert page.locator("tr", has_text="Land Checkout redesign").count() == 0

    page.goto(f"{live_server.url}/towns/acme/beads/{landing.bead_id}/")
    override = page.locator(".timeline li.override")
    assert "alice approved in the meeting" in override.inner_text()
    assert "user:lead" in override.inner_text()
    shot(page, "bead")
    event = BeadEvent.objects.get(bead_id=landing.bead_id, kind="override")
    assert event.user_id == demo_town["lead"].pk


def test_a_page_without_permission_is_refused(demo_town, live_server, page):
    sign_in(page, live_server, "viewer")
    page.goto(f"{live_server.url}/towns/acme/awaiting/")
    assert page.get_by_role("link", name="Clear awaiting").count() == 0
    mr = demo_town["landing"]
    response = page.goto(
        f"{live_server.url}/towns/acme/overrides/merge_request_clear_awaiting/{mr.pk}/"
    )
    assert response is not None and response.status == 403
    assert "Not allowed" in page.content()
    shot(page, "forbidden")


def test_a_user_does_not_see_another_teams_town(demo_town, live_server, page):
    sign_in(page, live_server, "lead")
    assert "Acme platform team" in page.content()
    assert "Other team" not in page.content()
    response = page.goto(f"{live_server.url}/towns/other/")
    assert response is not None and response.status == 404
    assert "Not found" in page.content()


def test_anonymous_visitor_is_sent_to_sign_in(demo_town, live_server, page):
    page.goto(f"{live_server.url}/towns/acme/convoys/")
    assert "/accounts/login/?next=/towns/acme/convoys/" in page.url
    shot(page, "login")


def test_screenshots_of_every_page(demo_town, live_server, page):
    sign_in(page, live_server, "lead")
    pages = {
        "towns": "/",
        "overview": "/towns/acme/",
        "awaiting-approval": "/towns/acme/awaiting/",
        "waiting-on-whom": "/towns/acme/waiting/",
        "convoys": "/towns/acme/convoys/",
        "convoy": f"/towns/acme/convoys/{demo_town['landing'].landing_convoy_id}/",
        "telemetry": "/towns/acme/telemetry/",
        "reconciler": "/towns/acme/reconciler/",
    }
    for name, path in pages.items():
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, path
        assert page.locator("h1").count() >= 1
        shot(page, name)
    page.goto(f"{live_server.url}/towns/acme/telemetry/")
    assert page.locator("svg.chart").count() == 6


def test_lists_refresh_with_htmx_without_a_reload(demo_town, live_server, page):
    """htmx is served from static/ and swaps the fragment in place."""
    sign_in(page, live_server, "lead")
    page.goto(f"{live_server.url}/towns/acme/awaiting/")
    assert page.evaluate("typeof htmx") == "object"
    page.evaluate("window.__marker = 1")
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"):
        page.evaluate(
            "htmx.ajax('GET', location.pathname, {target: '#awaiting-rows', swap: 'outerHTML'})"
        )
    page.wait_for_selector("#awaiting-rows")
    assert page.evaluate("window.__marker") == 1
    assert page.locator("#awaiting-rows tr", has_text="Land Checkout redesign").count() == 1


AXE_JS = Path(importlib.util.find_spec("axe_playwright_python").origin).parent / "axe.min.js"  # type: ignore[union-attr, arg-type]
VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


# How far the page scrolls sideways, and how many tables scroll sideways inside it.
OVERFLOW_JS = """() => [
  document.scrollingElement.scrollWidth - document.documentElement.clientWidth,
  [...document.querySelectorAll('.table-wrap')].filter(e => e.scrollWidth > e.clientWidth + 1)
    .length,
]"""


def every_page(demo_town) -> dict[str, str]:
    landing = demo_town["landing"]
    return {
        "towns": "/",
        "overview": "/towns/acme/",
        "awaiting-approval": "/towns/acme/awaiting/",
        "waiting-on-whom": "/towns/acme/waiting/",
        "convoys": "/towns/acme/convoys/?status=",
        "convoy": f"/towns/acme/convoys/{landing.landing_convoy_id}/",
        "bead": f"/towns/acme/beads/{landing.bead_id}/",
        "telemetry": "/towns/acme/telemetry/",
        "reconciler": "/towns/acme/reconciler/",
        "override-confirm": (f"/towns/acme/overrides/merge_request_clear_awaiting/{landing.pk}/"),
    }


def axe_violations(page) -> list[str]:
    # Closed disclosures (menus, a chart's numbers) are checked too.
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:3])
        for v in result["violations"]
    ]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_every_page_fits_the_screen_and_passes_axe(demo_town, live_server, page, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, live_server, "lead")
    problems = {}
    for name, path in every_page(demo_town).items():
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, path
        overflow, tables = page.evaluate(OVERFLOW_JS)
        shot(page, f"{name}-{viewport}")
        found = axe_violations(page)
        if overflow > 0:
            found.append(f"the page scrolls sideways by {overflow} px")
        if tables:
            found.append(f"{tables} table(s) scroll sideways")
        if found:
            problems[name] = found
    assert not problems, json.dumps(problems, indent=1)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_sign_in_page_fits_the_screen_and_passes_axe(live_server, page, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    page.goto(f"{live_server.url}/accounts/login/")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= VIEWPORTS[viewport]["width"]
    assert axe_violations(page) == []


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_chart_text_stays_readable_at_both_widths(demo_town, live_server, page, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, live_server, "lead")
    page.goto(f"{live_server.url}/towns/acme/telemetry/")
    sizes = page.evaluate(
        """() => [...document.querySelectorAll('svg.chart text')].map(t =>
             parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a)"""
    )
    assert len(sizes) > 50
    assert min(sizes) >= 11, min(sizes)


def test_on_a_phone_the_navigation_opens_from_the_menu_button(demo_town, live_server, page):
    page.set_viewport_size(VIEWPORTS["phone"])
    sign_in(page, live_server, "lead")
    page.goto(f"{live_server.url}/towns/acme/")
    menu = page.get_by_role("button", name="Menu")
    convoys = page.get_by_role("link", name="Convoys", exact=True)
    assert menu.get_attribute("aria-expanded") == "false"
    assert not convoys.is_visible()
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    convoys.click()
    page.wait_for_load_state()
    assert page.url.endswith("/towns/acme/convoys/")


def test_on_a_desktop_the_navigation_is_open_without_a_menu_button(demo_town, live_server, page):
    page.set_viewport_size(VIEWPORTS["desktop"])
    sign_in(page, live_server, "lead")
    page.goto(f"{live_server.url}/towns/acme/")
    assert not page.get_by_role("button", name="Menu").is_visible()
    assert page.get_by_role("link", name="Convoys", exact=True).is_visible()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_error_pages_fit_the_screen_and_pass_axe(demo_town, live_server, page, viewport):
    page.set_viewport_size(VIEWPORTS[viewport])
    sign_in(page, live_server, "viewer")
    landing = demo_town["landing"]
    for path, status in [
        ("/towns/other/", 404),
        (f"/towns/acme/overrides/merge_request_clear_awaiting/{landing.pk}/", 403),
    ]:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == status
        assert page.evaluate(OVERFLOW_JS) == [0, 0]
        assert axe_violations(page) == [], path
