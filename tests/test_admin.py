from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin import site
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from beads.models import (
    Bead,
    BeadDependency,
    BeadEvent,
    BeadEventKind,
    BeadStatus,
    MergeAttempt,
    MergeRequest,
)
from gastown.models import Convoy, NotificationSent, Town
from tests.factories import (
    AgentFactory,
    BeadDependencyFactory,
    BeadEventFactory,
    BeadFactory,
    ConvoyFactory,
    MergeRequestFactory,
    ReconcilerTickFactory,
    RigFactory,
    TelemetryEventFactory,
    TownFactory,
)

pytestmark = pytest.mark.django_db


def _bead_with_everything() -> Bead:
    convoy = ConvoyFactory()
    assignee = AgentFactory(town=convoy.town, rig=convoy.rig)
    bead = BeadFactory(town=convoy.town, rig=convoy.rig, convoy=convoy, assignee=assignee)
    BeadEventFactory(bead=bead)
    return bead


def _merge_request() -> MergeRequest:
    source = _bead_with_everything()
    return MergeRequestFactory(
        bead__town=source.town,
        bead__rig=source.rig,
        source=source,
        landing_convoy=source.convoy,
        pr_url=f"https://github.com/{source.rig.repo}/pull/{source.pk}",
    )


def _telemetry() -> Model:
    bead = BeadFactory(convoy=ConvoyFactory())
    return TelemetryEventFactory(town=bead.town, rig=bead.rig, bead=bead, convoy=bead.convoy)


def _notification() -> Model:
    town = TownFactory()
    return NotificationSent.objects.create(
        town=town, key=f"escalation:{town.pk}", channel="webhook", attempts=2, error="503\nbody"
    )


def _town() -> Town:
    town = TownFactory()
    RigFactory(town=town)
    return town


#: One maker per admin: each creates a row with every foreign key filled, so a missing
#: select_related shows up as extra queries.
MAKERS: dict[str, Callable[[], Model]] = {
    "gastown.town": _town,
    "gastown.rig": RigFactory,
    "gastown.agent": lambda: AgentFactory(hooked_bead=BeadFactory()),
    "gastown.convoy": ConvoyFactory,
    "gastown.telemetryevent": _telemetry,
    "gastown.reconcilertick": ReconcilerTickFactory,
    "beads.bead": _bead_with_everything,
    "beads.beaddependency": BeadDependencyFactory,
    "beads.beadevent": BeadEventFactory,
    "beads.mergerequest": _merge_request,
    "gastown.notificationsent": _notification,
}
VIEW_ONLY = {
    "gastown.telemetryevent",
    "gastown.reconcilertick",
    "beads.beadevent",
    "gastown.notificationsent",
}
NO_ADD = VIEW_ONLY


def _url(label: str, view: str, *args: Any) -> str:
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def _queries(client: Any, url: str) -> int:
    # Warm up first: process-wide caches (content types) are filled by the first request only.
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


@pytest.mark.parametrize("label", sorted(MAKERS))
def test_changelist_and_change_page_load(admin_client, label):
    obj = MAKERS[label]()
    changelist = admin_client.get(_url(label, "changelist"))
    change = admin_client.get(_url(label, "change", obj.pk))
    assert changelist.status_code == 200
    assert change.status_code == 200


@pytest.mark.parametrize("label", sorted(set(MAKERS) - NO_ADD))
def test_add_page_loads(admin_client, label):
    assert admin_client.get(_url(label, "add")).status_code == 200


@pytest.mark.parametrize("label", sorted(NO_ADD))
def test_records_cannot_be_added_in_the_admin(admin_client, label):
    assert admin_client.get(_url(label, "add")).status_code == 403


@pytest.mark.parametrize("label", sorted(MAKERS))
def test_changelist_query_count_does_not_grow_with_rows(admin_client, label):
    for _ in range(3):
        MAKERS[label]()
    few = _queries(admin_client, _url(label, "changelist"))
    for _ in range(27):
        MAKERS[label]()
    many = _queries(admin_client, _url(label, "changelist"))
    assert many == few


def test_bead_change_page_query_count_does_not_grow_with_events(admin_client):
    mr = _merge_request()
    BeadEventFactory.create_batch(3, bead=mr.bead)
    few = _queries(admin_client, _url("beads.bead", "change", mr.bead.pk))
    BeadEventFactory.create_batch(30, bead=mr.bead)
    many = _queries(admin_client, _url("beads.bead", "change", mr.bead.pk))
    assert many == few


def test_merge_request_change_page_query_count_does_not_grow_with_events(admin_client):
    mr = _merge_request()
    BeadEventFactory.create_batch(3, bead=mr.bead)
    few = _queries(admin_client, _url("beads.mergerequest", "change", mr.pk))
    BeadEventFactory.create_batch(30, bead=mr.bead)
    many = _queries(admin_client, _url("beads.mergerequest", "change", mr.pk))
    assert many == few


def test_bead_change_page_shows_its_merge_request_and_recent_events(admin_client):
    mr = _merge_request()
    BeadEventFactory(bead=mr.bead, note="first look at the PR")
    BeadEventFactory(bead=MergeRequestFactory().bead, note="another bead's event")
    html = admin_client.get(_url("beads.bead", "change", mr.bead.pk)).content.decode()
    assert mr.pr_url in html
    assert mr.branch in html
    assert "first look at the PR" in html
    assert "another bead&#x27;s event" not in html
    assert f"?bead_ref={mr.bead.pk}" in html
    # Its MR's fields are grouped as on the MR's own page, not one flat list.
    for heading in ("What GitHub said", "What gastown decided", "Polling and outcome"):
        assert heading in html


def test_bead_events_link_filters_the_audit_by_bead(admin_client):
    bead, other = BeadFactory(), BeadFactory()
    BeadEventFactory(bead=bead, note="mine")
    BeadEventFactory(bead=other, note="theirs")
    response = admin_client.get(_url("beads.beadevent", "changelist") + f"?bead_ref={bead.pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "mine" in html
    assert "theirs" not in html


# Secrets ---------------------------------------------------------------------------------


def _town_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Acme",
        "slug": "acme",
        "auto_merge": "on",
        "auto_merge_delay_minutes": "0",
        "merge_methods": "squash,merge,rebase",
        "default_merge_mode": "review-and-merge",
        "code_review": "on",
        "human_wait_escalation_hours": "24",
        "poll_interval_seconds": "60",
        "max_dispatch_attempts": "5",
        "max_landing_attempts": "5",
        "dispatch_backoff_seconds": "30,60,120,300,600",
        "landing_cooldown_base_seconds": "30",
        "landing_cooldown_max_seconds": "1800",
        "breaker_threshold": "20",
        "breaker_window_minutes": "30",
        "github_token_env": "",
        "github_token": "",
        "rigs-TOTAL_FORMS": "0",
        "rigs-INITIAL_FORMS": "0",
        "rigs-MIN_NUM_FORMS": "0",
        "rigs-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    data.update(overrides)
    return data


TOKEN = "ghp_SuperSecretTokenValue1234567890"


def test_token_saved_in_the_town_admin_is_stored_encrypted_and_never_rendered(admin_client):
    response = admin_client.post(_url("gastown.town", "add"), _town_form(github_token=TOKEN))
    assert response.status_code == 302
    town = Town.objects.get(slug="acme")
    assert town.github_token() == TOKEN
    assert TOKEN not in town.github_token_encrypted

    pages = [
        admin_client.get(_url("gastown.town", "change", town.pk)),
        admin_client.get(_url("gastown.town", "changelist")),
        admin_client.get(_url("gastown.town", "history", town.pk)),
    ]
    for page in pages:
        html = page.content.decode()
        assert TOKEN not in html
        assert town.github_token_encrypted not in html
    assert "yes (stored encrypted)" in pages[0].content.decode()


def test_town_form_error_does_not_echo_the_token(admin_client):
    response = admin_client.post(
        _url("gastown.town", "add"), _town_form(github_token=TOKEN, poll_interval_seconds="1")
    )
    assert response.status_code == 200
    assert TOKEN not in response.content.decode()


def test_saving_the_town_without_a_token_keeps_the_stored_one(admin_client):
    town = TownFactory(slug="acme")
    town.set_github_token(TOKEN)
    town.save()
    admin_client.post(_url("gastown.town", "change", town.pk), _town_form(name="Renamed"))
    town.refresh_from_db()
    assert town.name == "Renamed"
    assert town.github_token() == TOKEN


def test_clear_token_checkbox_removes_the_stored_token(admin_client):
    town = TownFactory(slug="acme")
    town.set_github_token(TOKEN)
    town.save()
    admin_client.post(_url("gastown.town", "change", town.pk), _town_form(clear_github_token="on"))
    town.refresh_from_db()
    assert town.github_token_encrypted == ""
    assert not town.has_github_token


APP_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretAppKeyBody0123456789\n-----END RSA PRIVATE KEY-----"
)


def test_app_key_saved_in_the_town_admin_is_stored_encrypted_and_never_rendered(admin_client):
    form = _town_form(github_app_id="4242", github_app_private_key=APP_KEY)
    assert admin_client.post(_url("gastown.town", "add"), form).status_code == 302
    town = Town.objects.get(slug="acme")
    assert town.github_app_private_key() == APP_KEY
    assert "secretAppKeyBody" not in town.github_app_private_key_encrypted
    html = admin_client.get(_url("gastown.town", "change", town.pk)).content.decode()
    assert "secretAppKeyBody" not in html
    assert "GitHub App 4242 (key stored encrypted)" in html

    admin_client.post(_url("gastown.town", "change", town.pk), _town_form(github_app_id="4242"))
    town.refresh_from_db()
    assert town.github_app_private_key() == APP_KEY  # empty field: kept


def test_app_key_that_is_not_a_pem_is_refused_without_echo(admin_client):
    form = _town_form(github_app_id="4242", github_app_private_key="secretNotAPemValue")
    response = admin_client.post(_url("gastown.town", "add"), form)
    assert response.status_code == 200
    assert "secretNotAPemValue" not in response.content.decode()
    assert not Town.objects.filter(slug="acme").exists()


# Bead status goes through the service -------------------------------------------------------


def _run_action(client: Any, label: str, action: str, pks: list[int]) -> str:
    response = client.post(
        _url(label, "changelist"),
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def test_close_action_closes_open_beads_through_the_audited_service(admin_client):
    bead = BeadFactory(status=BeadStatus.IN_PROGRESS)
    html = _run_action(admin_client, "beads.bead", "close_beads", [bead.pk])
    bead.refresh_from_db()
    event = BeadEvent.objects.get(bead=bead, kind=BeadEventKind.STATUS)
    assert bead.status == BeadStatus.CLOSED
    assert bead.closed_at is not None
    assert (event.from_status, event.to_status, event.actor) == (
        "in_progress",
        "closed",
        "user:admin",
    )
    assert event.user is not None
    assert "Closed 1 bead:" in html


@pytest.mark.parametrize("action", ["close_beads"])
def test_bead_actions_refuse_terminal_beads(admin_client, action):
    closed = BeadFactory(status=BeadStatus.CLOSED)
    failed = BeadFactory(status=BeadStatus.FAILED)
    html = _run_action(admin_client, "beads.bead", action, [closed.pk, failed.pk])
    closed.refresh_from_db()
    failed.refresh_from_db()
    assert (closed.status, failed.status) == (BeadStatus.CLOSED, BeadStatus.FAILED)
    assert not BeadEvent.objects.filter(kind=BeadEventKind.STATUS).exists()
    assert "Skipped 2 terminal beads:" in html


def test_fail_merge_request_action_fails_the_mr_bead_and_frees_the_slot(admin_client):
    mr = _merge_request()
    admin_client.post(
        _url("beads.mergerequest", "changelist"),
        {
            "action": "override_merge_request_fail",
            "_selected_action": [str(mr.pk)],
            "override_confirmed": "yes",
            "reason": "superseded",
        },
    )
    mr.refresh_from_db()
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.is_active is False


def _bead_form(bead: Bead, **overrides: Any) -> dict[str, Any]:
    data = {
        "town": bead.town_id,
        "rig": bead.rig_id or "",
        "convoy": bead.convoy_id or "",
        "type": bead.type,
        "title": bead.title,
        "body": bead.body,
        "priority": bead.priority,
        "labels": "[]",
        "metadata": "{}",
        "parent": "",
        "assignee": bead.assignee_id or "",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def test_bead_form_ignores_a_posted_status_and_audits_the_edit(admin_client):
    bead = BeadFactory(status=BeadStatus.OPEN)
    response = admin_client.post(
        _url("beads.bead", "change", bead.pk), _bead_form(bead, title="Renamed", status="closed")
    )
    assert response.status_code == 302
    bead.refresh_from_db()
    assert bead.title == "Renamed"
    assert bead.status == BeadStatus.OPEN
    event = BeadEvent.objects.get(bead=bead)
    assert event.actor == "user:admin"
    assert "title" in event.note


def _between_load_and_save(monkeypatch: Any, model: type[Model], write: Callable[[], Any]) -> None:
    """Run `write` after the admin has loaded the object and before it saves it."""
    model_admin = site._registry[model]
    save_form = model_admin.save_form

    def save_form_after_a_concurrent_write(request: Any, form: Any, change: bool) -> Any:
        write()
        return save_form(request, form, change)

    monkeypatch.setattr(model_admin, "save_form", save_form_after_a_concurrent_write)


def test_bead_edit_does_not_overwrite_a_status_changed_meanwhile(admin_client, monkeypatch):
    bead = BeadFactory(status=BeadStatus.OPEN)
    _between_load_and_save(
        monkeypatch, Bead, lambda: Bead.objects.filter(pk=bead.pk).update(status="closed")
    )
    admin_client.post(_url("beads.bead", "change", bead.pk), _bead_form(bead, title="Renamed"))
    bead.refresh_from_db()
    assert (bead.title, bead.status) == ("Renamed", BeadStatus.CLOSED)


def test_merge_request_edit_does_not_overwrite_a_snapshot_taken_meanwhile(
    admin_client, monkeypatch
):
    mr = _merge_request()
    form = {
        "bead": mr.bead_id,
        "source": mr.source_id,
        "landing_convoy": mr.landing_convoy_id,
        "branch": "polecat/renamed",
        "target_branch": mr.target_branch,
        "pr_url": mr.pr_url,
        "_save": "Save",
    }
    _between_load_and_save(
        monkeypatch,
        MergeRequest,
        lambda: MergeRequest.objects.filter(pk=mr.pk).update(head_sha="f00d", blocker="ready"),
    )
    response = admin_client.post(_url("beads.mergerequest", "change", mr.pk), form)
    assert response.status_code == 302
    mr.refresh_from_db()
    assert (mr.branch, mr.head_sha, mr.blocker) == ("polecat/renamed", "f00d", "ready")


def _merge_request_form(mr: MergeRequest, **changes: Any) -> dict[str, Any]:
    form = {
        "bead": mr.bead_id,
        "source": mr.source_id,
        "landing_convoy": mr.landing_convoy_id,
        "branch": mr.branch,
        "target_branch": mr.target_branch,
        "pr_url": mr.pr_url,
        "_save": "Save",
    }
    return {**form, **changes}


def test_malformed_pr_url_in_the_admin_is_a_form_error_that_changes_nothing(admin_client):
    mr = _merge_request()
    before = (mr.pr_url, mr.pr_repo, mr.pr_number)
    response = admin_client.post(
        _url("beads.mergerequest", "change", mr.pk),
        _merge_request_form(mr, pr_url="https://github.com/acme/web/issues/7"),
    )
    assert response.status_code == 200
    assert "pr_url" in response.context["adminform"].form.errors
    mr.refresh_from_db()
    assert (mr.pr_url, mr.pr_repo, mr.pr_number) == before


def test_new_pr_url_in_the_admin_is_parsed_and_checked_at_once(admin_client):
    mr = _merge_request()
    assert mr.check_requested_at is None
    repo = mr.bead.rig.repo
    response = admin_client.post(
        _url("beads.mergerequest", "change", mr.pk),
        _merge_request_form(mr, pr_url=f"https://github.com/{repo.upper()}/pull/99"),
    )
    assert response.status_code == 302
    mr.refresh_from_db()
    assert (mr.pr_url, mr.pr_repo.lower(), mr.pr_number) == (
        f"https://github.com/{repo.upper()}/pull/99",
        repo,
        99,
    )
    assert mr.check_requested_at is not None


def test_new_pr_url_in_the_admin_forgets_what_was_known_of_the_old_pr(admin_client):
    from django.utils import timezone

    mr = _merge_request()
    now = timezone.now()
    MergeRequest.objects.filter(pk=mr.pk).update(
        blocker="ready",
        head_sha="abc123",
        review_status="passed",
        auto_merge_ready_since=now,
        merge_requested_at=now,
    )
    refusal = MergeAttempt.objects.create(
        merge_request=mr,
        created_at=now,
        head_sha="abc123",
        outcome="checks_required",
        refusal_kind="checks_pending",
    )
    MergeRequest.objects.filter(pk=mr.pk).update(merge_refusal=refusal, merge_hold_from=now)
    mr.refresh_from_db()
    response = admin_client.post(
        _url("beads.mergerequest", "change", mr.pk),
        _merge_request_form(mr, pr_url=f"https://github.com/{mr.bead.rig.repo}/pull/99"),
    )
    assert response.status_code == 302
    mr.refresh_from_db()
    assert (mr.blocker, mr.head_sha, mr.review_status) == ("", "", "pending")
    assert (mr.auto_merge_ready_since, mr.merge_requested_at) == (None, None)
    assert (mr.merge_refusal, mr.merge_hold_from) == (None, None)
    assert MergeAttempt.objects.filter(merge_request=mr).count() == 1, "the audit stays"
    assert (mr.pr_repo, mr.pr_number) == (mr.bead.rig.repo, 99)


def test_new_pr_url_in_the_admin_ends_the_old_prs_wait_with_an_event(admin_client):
    from datetime import timedelta

    from gastown.models import TelemetryEvent

    mr = _merge_request()
    old_url = mr.pr_url
    since = timezone.now() - timedelta(hours=2)
    MergeRequest.objects.filter(pk=mr.pk).update(
        blocker="human_review",
        review_decision="REVIEW_REQUIRED",
        waiting_since=since,
    )
    mr.refresh_from_db()
    response = admin_client.post(
        _url("beads.mergerequest", "change", mr.pk),
        _merge_request_form(mr, pr_url=f"https://github.com/{mr.bead.rig.repo}/pull/99"),
    )
    assert response.status_code == 302
    mr.refresh_from_db()
    assert mr.waiting_since is None
    [resolved] = TelemetryEvent.objects.filter(name="pr.awaiting_approval_resolved")
    assert (resolved.reason, resolved.label) == ("cleared_by_user", "REVIEW_REQUIRED")
    assert resolved.data["pr_url"] == old_url, "the wait that ended was the old PR's"
    assert resolved.bead_id == mr.bead_id
    assert resolved.duration_ms >= 2 * 3600 * 1000


def test_new_pr_url_in_the_admin_with_no_wait_records_no_wait_event(admin_client):
    from gastown.models import TelemetryEvent

    mr = _merge_request()
    response = admin_client.post(
        _url("beads.mergerequest", "change", mr.pk),
        _merge_request_form(mr, pr_url=f"https://github.com/{mr.bead.rig.repo}/pull/99"),
    )
    assert response.status_code == 302
    assert not TelemetryEvent.objects.filter(name="pr.awaiting_approval_resolved").exists()


def test_pr_of_another_repository_is_refused_in_the_admin(admin_client):
    mr = _merge_request()
    before = (mr.pr_url, mr.pr_repo, mr.pr_number)
    response = admin_client.post(
        _url("beads.mergerequest", "change", mr.pk),
        _merge_request_form(mr, pr_url="https://github.com/someone/else/pull/1"),
    )
    assert response.status_code == 200
    assert "rig" in str(response.context["adminform"].form.errors["pr_url"])
    mr.refresh_from_db()
    assert (mr.pr_url, mr.pr_repo, mr.pr_number) == before


def test_cleared_pr_url_in_the_admin_clears_repository_and_number(admin_client):
    mr = _merge_request()
    response = admin_client.post(
        _url("beads.mergerequest", "change", mr.pk), _merge_request_form(mr, pr_url="")
    )
    assert response.status_code == 302
    mr.refresh_from_db()
    assert (mr.pr_url, mr.pr_repo, mr.pr_number) == ("", "", None)


def test_bead_added_in_the_admin_is_created_by_the_service(admin_client):
    town = TownFactory()
    data = _bead_form(Bead(town=town, type="issue", priority="high", title="From the admin"))
    data.update(
        {
            "merge_request-TOTAL_FORMS": "0",
            "merge_request-INITIAL_FORMS": "0",
            "merge_request-MIN_NUM_FORMS": "0",
            "merge_request-MAX_NUM_FORMS": "1",
        }
    )
    response = admin_client.post(_url("beads.bead", "add"), data)
    assert response.status_code == 302
    bead = Bead.objects.get(title="From the admin")
    assert bead.created_by == "user:admin"
    assert bead.status == BeadStatus.OPEN
    assert BeadEvent.objects.filter(bead=bead, kind=BeadEventKind.CREATED).exists()


# Read-only audit and telemetry ------------------------------------------------------------


@pytest.mark.parametrize("label", sorted(VIEW_ONLY))
def test_audit_and_telemetry_are_view_only(admin_client, label):
    obj = MAKERS[label]()
    changelist = admin_client.get(_url(label, "changelist")).content.decode()
    change = admin_client.get(_url(label, "change", obj.pk)).content.decode()
    assert _url(label, "add") not in changelist
    assert 'name="_save"' not in change
    assert 'class="deletelink"' not in change
    assert admin_client.post(_url(label, "change", obj.pk), {}).status_code == 403
    assert admin_client.post(_url(label, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_script_in_a_bead_title_is_escaped_on_the_changelist(admin_client):
    BeadFactory(title="<script>alert('pwned')</script>")
    html = admin_client.get(_url("beads.bead", "changelist")).content.decode()
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html


# Convoy and town state changes only through the audited overrides ---------------------------


def _convoy_form(convoy: Any, **overrides: Any) -> dict[str, Any]:
    data = {
        "town": convoy.town_id,
        "rig": convoy.rig_id or "",
        "title": convoy.title,
        "merge_mode": convoy.merge_mode,
        "feature_branch": convoy.feature_branch,
        "created_by": convoy.created_by,
        "held_escalation": "",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def test_convoy_change_form_cannot_reopen_a_convoy_nor_end_its_suppression(admin_client):
    convoy = ConvoyFactory(status="failed", failure_reason="landing_attempts_exhausted")
    mr = MergeRequestFactory(bead__town=convoy.town, landing_convoy=convoy)
    since = timezone.now()
    Convoy.objects.filter(pk=convoy.pk).update(
        respawn_suppressed_since=since,
        suppressed_landing_mr=mr,
        suppressed_pr_url="https://github.com/acme/web/pull/9",
        suppressed_attempt=2,
    )
    form = admin_client.get(_url("gastown.convoy", "change", convoy.pk)).content.decode()
    for field in [
        "status",
        "failure_reason",
        "respawn_suppressed_since",
        "suppressed_landing_mr",
        "suppressed_pr_url",
        "suppressed_attempt",
    ]:
        assert f'name="{field}' not in form, field
    response = admin_client.post(
        _url("gastown.convoy", "change", convoy.pk),
        _convoy_form(
            convoy,
            title="Renamed",
            status="ready_to_land",
            failure_reason="",
            respawn_suppressed_since_0="",
            respawn_suppressed_since_1="",
            suppressed_landing_mr="",
            suppressed_pr_url="",
            suppressed_attempt="",
        ),
    )
    assert response.status_code == 302
    convoy.refresh_from_db()
    assert convoy.title == "Renamed"
    assert (convoy.status, convoy.failure_reason) == ("failed", "landing_attempts_exhausted")
    assert convoy.respawn_suppressed_since == since
    assert convoy.suppressed_landing_mr_id == mr.pk
    assert convoy.suppressed_pr_url == "https://github.com/acme/web/pull/9"
    assert convoy.suppressed_attempt == 2


def test_convoy_can_still_be_created_in_the_admin_and_starts_open(admin_client):
    rig = RigFactory()
    template = Convoy(town=rig.town, rig=rig, title="From the admin", merge_mode="review-then-land")
    response = admin_client.post(
        _url("gastown.convoy", "add"), _convoy_form(template, status="landed")
    )
    assert response.status_code == 302
    convoy = Convoy.objects.get(title="From the admin")
    assert convoy.status == "open"
    assert convoy.respawn_suppressed_since is None


def test_town_admin_edits_the_reconciler_thresholds(admin_client):
    town = TownFactory(slug="acme")
    form = admin_client.get(_url("gastown.town", "change", town.pk)).content.decode()
    assert 'name="dispatch_backoff_seconds" value="30,60,120,300,600"' in form
    data = _town_form(
        dispatch_backoff_seconds="10,20",
        landing_cooldown_base_seconds="15",
        landing_cooldown_max_seconds="600",
        breaker_threshold="5",
        breaker_window_minutes="10",
    )
    response = admin_client.post(_url("gastown.town", "change", town.pk), data)
    assert response.status_code == 302
    town.refresh_from_db()
    assert town.dispatch_backoff_seconds == "10,20"
    assert (town.landing_cooldown_base_seconds, town.landing_cooldown_max_seconds) == (15, 600)
    assert (town.breaker_threshold, town.breaker_window_minutes) == (5, 10)


def test_malformed_dispatch_backoff_is_a_form_error_in_the_town_admin(admin_client):
    town = TownFactory(slug="acme")
    response = admin_client.post(
        _url("gastown.town", "change", town.pk), _town_form(dispatch_backoff_seconds="30,soon")
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors.keys() == {"dispatch_backoff_seconds"}
    town.refresh_from_db()
    assert town.dispatch_backoff_seconds == "30,60,120,300,600"


@pytest.mark.parametrize("paused", [True, False])
def test_town_change_form_cannot_pause_or_resume(admin_client, paused):
    town = TownFactory(slug="acme", paused=paused)
    form = admin_client.get(_url("gastown.town", "change", town.pk)).content.decode()
    assert 'name="paused"' not in form
    data = _town_form(name="Renamed")
    if not paused:
        data["paused"] = "on"
    response = admin_client.post(_url("gastown.town", "change", town.pk), data)
    assert response.status_code == 302
    town.refresh_from_db()
    assert town.name == "Renamed"
    assert town.paused is paused


def test_admin_refuses_a_dependency_cycle(admin_client):
    a = BeadFactory()
    b = BeadFactory(town=a.town)
    BeadDependencyFactory(bead=a, depends_on=b, kind="blocks")
    response = admin_client.post(
        _url("beads.beaddependency", "add"),
        {"bead": b.pk, "depends_on": a.pk, "kind": "blocks", "_save": "Save"},
    )
    assert response.status_code == 200
    assert "cycle" in str(response.context["adminform"].form.non_field_errors())
    assert not BeadDependency.objects.filter(bead=b).exists()


@pytest.mark.parametrize("status", [BeadStatus.CLOSED, BeadStatus.FAILED])
def test_a_terminal_bead_is_read_only_in_the_admin(admin_client, status):
    bead = BeadFactory(status=status, title="Done work")
    page = admin_client.get(_url("beads.bead", "change", bead.pk)).content.decode()
    assert 'name="_save"' not in page
    response = admin_client.post(_url("beads.bead", "change", bead.pk), {"title": "Rewritten"})
    assert response.status_code == 403
    bead.refresh_from_db()
    assert bead.title == "Done work"


def test_a_live_bead_can_still_be_edited(admin_client):
    bead = BeadFactory(status=BeadStatus.OPEN)
    page = admin_client.get(_url("beads.bead", "change", bead.pk)).content.decode()
    assert 'name="_save"' in page


def test_beads_cannot_be_deleted_in_bulk_so_their_audit_stays(admin_client):
    bead = BeadFactory()
    page = admin_client.get(_url("beads.bead", "changelist")).content.decode()
    assert "delete_selected" not in page
    response = admin_client.post(
        _url("beads.bead", "changelist"),
        {"action": "delete_selected", "_selected_action": [bead.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert Bead.objects.filter(pk=bead.pk).exists()


def test_merge_request_admin_groups_snapshot_decisions_and_audit_and_words_the_status(
    admin_client,
):
    mr = _merge_request()
    MergeRequest.objects.filter(pk=mr.pk).update(
        blocker="human_review", requested_reviewers=["alice"]
    )
    page = admin_client.get(_url("beads.mergerequest", "change", mr.pk)).content.decode()
    for heading in ("What GitHub said", "What gastown decided", "Audit: merge calls"):
        assert heading in page
    assert "needs approval from alice" in page
    changelist = admin_client.get(_url("beads.mergerequest", "changelist")).content.decode()
    assert "needs approval from alice" in changelist
    assert f">{mr.pr_name}<" in changelist


def test_bead_changelist_names_beads_bd_n_and_words_an_mrs_status_as_everywhere(
    admin_client,
):
    mr = _merge_request()
    MergeRequest.objects.filter(pk=mr.pk).update(
        blocker="human_review", requested_reviewers=["alice"]
    )
    issue = BeadFactory(town=mr.bead.town, title="Plain issue")
    changelist = admin_client.get(_url("beads.bead", "changelist")).content.decode()
    # The MR bead's status is the MR's sentence, as on the dashboard and the MR admin.
    assert "needs approval from alice" in changelist
    assert f">bd-{mr.bead_id}</a>" in changelist and f">bd-{issue.pk}</a>" in changelist
    assert ">Open</td>" in changelist  # an issue keeps its own status
    # Both columns still sort: by id and by status.
    assert admin_client.get(_url("beads.bead", "changelist") + "?o=1").status_code == 200
    assert admin_client.get(_url("beads.bead", "changelist") + "?o=4").status_code == 200


def test_town_admin_sets_the_notification_webhook(admin_client):
    town = _town()
    page = admin_client.get(_url("gastown.town", "change", town.pk)).content.decode()
    assert 'name="notify_webhook_url"' in page


def test_bead_names_in_the_admin_cannot_be_read_as_pr_numbers():
    bead = BeadFactory(title="Fix it")
    assert str(bead) == f"bd-{bead.pk} Fix it"
    event = BeadEventFactory(bead=bead)
    assert f"bd-{bead.pk}" in str(event)


def test_the_notification_webhook_is_saved_from_the_town_page(admin_client):
    town = _town()
    page = admin_client.get(_url("gastown.town", "change", town.pk))
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, list)}
    data.update(
        {
            "member_users": [],
            "member_groups": [],
            "notify_webhook_url": "hooks.example.com/T0/B0/secret",
            "rigs-TOTAL_FORMS": "0",
            "rigs-INITIAL_FORMS": "0",
        }
    )
    admin_client.post(_url("gastown.town", "change", town.pk), data)
    town.refresh_from_db()
    assert town.notify_webhook_url == "https://hooks.example.com/T0/B0/secret"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "make",
    [
        lambda: BeadFactory(title='a <b> & "quoted" title'),
        lambda: MergeRequestFactory(),
        lambda: TownFactory(name="Town <i>"),
    ],
)
def test_the_row_checkbox_is_django_s_markup_without_a_template_per_row(make):
    """Each changelist row's action checkbox is written directly (rendering Django's widget
    template per row was a third of the bead list's time): the same markup as Django's."""
    from django.contrib.admin import ModelAdmin

    obj = make()
    model_admin = site._registry[type(obj)]
    assert model_admin.action_checkbox(obj) == ModelAdmin.action_checkbox(model_admin, obj)
