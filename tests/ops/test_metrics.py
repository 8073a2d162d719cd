from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from beads.models import BeadStatus, BeadType, Blocker
from gastown.feedback.checks import check_prs, token_label
from gastown.metrics import render
from gastown.models import FeedbackCheckRun, TelemetryEvent, WebhookDelivery
from gastown.services.github import town_token
from scm.credentials import resolve_token
from tests.factories import (
    BeadFactory,
    FeedbackCheckRunFactory,
    MergeRequestFactory,
    ReconcilerTickFactory,
    RigFactory,
    TelemetryEventFactory,
    TownFactory,
)
from tests.feedback.conftest import make_mr

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-" + "m" * 30
#: Queries per scrape, whatever the number of rows (asserted at two sizes).
SCRAPE_QUERIES = 9


def scrape(now=None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render(now).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples[name, tuple(sorted(labels.items()))]


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def telemetry(town, name, *, at=None, count=1):
    for _ in range(count):
        event = TelemetryEventFactory(town=town, name=name)
        if at is not None:
            TelemetryEvent.objects.filter(pk=event.pk).update(created_at=at)


def webhook(status, *, at=None):
    delivery = WebhookDelivery.objects.create(
        delivery_id=f"d-{WebhookDelivery.objects.count()}-{status}",
        event="pull_request",
        status=status,
    )
    if at is not None:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(received_at=at)


def mr(town, blocker, *, waiting_since=None, status=BeadStatus.IN_PROGRESS, pr=True):
    return MergeRequestFactory(
        bead__town=town,
        bead__status=status,
        pr_url="https://github.com/octo/app/pull/1" if pr else "",
        blocker=blocker,
        waiting_since=waiting_since,
    )


# --- access -------------------------------------------------------------------------------


def test_metrics_are_off_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"{TOKEN}"],
)
def test_metrics_refuse_a_missing_or_wrong_token(client, settings, header):
    settings.METRICS_TOKEN = TOKEN
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"gastown_" not in response.content


def test_metrics_answer_the_token_in_prometheus_format(client, settings):
    settings.METRICS_TOKEN = TOKEN
    TownFactory(slug="acme")
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert 'gastown_town_paused{town="acme"} 0.0' in response.content.decode()


# --- values -------------------------------------------------------------------------------


def test_reconciler_ticks_and_their_duration_over_the_last_hour():
    town = TownFactory(slug="acme")
    TownFactory(slug="idle")
    last = ago(seconds=20)
    for started, ms in ((last, 300), (ago(minutes=10), 100), (ago(hours=3), 9000)):
        ReconcilerTickFactory(town=town, started_at=started, duration_ms=ms)
    samples = scrape()
    assert value(samples, "gastown_reconciler_last_tick_timestamp_seconds", town="acme") == (
        pytest.approx(last.timestamp())
    )
    assert value(samples, "gastown_reconciler_ticks_last_hour", town="acme") == 2
    assert value(samples, "gastown_reconciler_tick_seconds_last_hour", town="acme", stat="max") == (
        0.3
    )
    assert value(samples, "gastown_reconciler_tick_seconds_last_hour", town="acme", stat="avg") == (
        0.2
    )
    assert not any(labels == (("town", "idle"),) for name, labels in samples if "tick" in name)


def test_prs_checked_and_github_budget_per_token():
    acme, beta = TownFactory(slug="acme"), TownFactory(slug="beta")
    reset = timezone.now() + timedelta(minutes=30)
    FeedbackCheckRunFactory(town=acme, started_at=ago(hours=2), checked=99, graphql_points=99)
    FeedbackCheckRunFactory(
        town=acme,
        started_at=ago(minutes=5),
        checked=40,
        errors=1,
        github_requests=2,
        graphql_points=3,
        graphql_remaining=4990,
        graphql_reset_at=reset,
        core_remaining=4000,
        core_reset_at=reset,
    )
    FeedbackCheckRunFactory(
        town=acme,
        started_at=ago(minutes=1),
        checked=10,
        github_requests=1,
        graphql_points=1,
        graphql_remaining=4989,
        graphql_reset_at=reset,
    )  # no REST call: the core budget stays what the previous record said
    FeedbackCheckRunFactory(
        town=beta,
        token="town:beta",
        started_at=ago(minutes=1),
        checked=7,
        github_requests=1,
        graphql_points=2,
        graphql_remaining=10,
        graphql_reset_at=ago(minutes=1),
    )  # its reset has passed: the remaining it knew is stale
    samples = scrape()
    assert value(samples, "gastown_prs_checked_last_hour", town="acme") == 50
    assert value(samples, "gastown_prs_checked_last_hour", town="beta") == 7
    assert value(samples, "gastown_pr_check_errors_last_hour", town="acme") == 1
    assert value(samples, "gastown_github_graphql_points_used_last_hour", token="GITHUB_TOKEN") == 4
    assert value(samples, "gastown_github_graphql_points_used_last_hour", token="town:beta") == 2
    assert value(samples, "gastown_github_requests_last_hour", token="GITHUB_TOKEN") == 3
    remaining = "gastown_github_rate_limit_remaining"
    assert value(samples, remaining, token="GITHUB_TOKEN", resource="graphql") == 4989
    assert value(samples, remaining, token="GITHUB_TOKEN", resource="core") == 4000
    assert value(
        samples,
        "gastown_github_rate_limit_reset_timestamp_seconds",
        token="GITHUB_TOKEN",
        resource="graphql",
    ) == pytest.approx(reset.timestamp())
    assert (remaining, (("resource", "graphql"), ("token", "town:beta"))) not in samples


def test_merge_requests_by_blocker_and_the_age_of_human_waits():
    town = TownFactory(slug="acme")
    mr(town, Blocker.HUMAN_REVIEW, waiting_since=ago(hours=5))
    mr(town, Blocker.HUMAN_REVIEW, waiting_since=ago(hours=1))
    mr(town, Blocker.CHECKS_PENDING, waiting_since=ago(minutes=30))  # a push while waiting
    mr(town, Blocker.CHECKS_PENDING)
    mr(town, "")
    mr(town, Blocker.HUMAN_REVIEW, waiting_since=ago(days=9), status=BeadStatus.FAILED)
    mr(town, Blocker.READY, pr=False)
    samples = scrape()
    assert value(samples, "gastown_merge_requests", town="acme", blocker="human_review") == 2
    assert value(samples, "gastown_merge_requests", town="acme", blocker="checks_pending") == 2
    assert value(samples, "gastown_merge_requests", town="acme", blocker="none") == 1
    assert ("gastown_merge_requests", (("blocker", "ready"), ("town", "acme"))) not in samples
    assert value(samples, "gastown_human_waits", town="acme", blocker="human_review") == 2
    assert value(samples, "gastown_human_waits", town="acme", blocker="checks_pending") == 1
    oldest = value(
        samples, "gastown_human_wait_oldest_seconds", town="acme", blocker="human_review"
    )
    assert 5 * 3600 <= oldest < 5 * 3600 + 60


def test_merges_refusals_dispatches_and_the_breaker():
    town = TownFactory(slug="acme", breaker_threshold=3, breaker_window_minutes=30)
    calm = TownFactory(slug="calm", breaker_threshold=3, breaker_window_minutes=120)
    telemetry(town, "pr.merged", count=2)
    telemetry(town, "pr.merged", at=ago(hours=2))
    telemetry(town, "pr.merge_refused")
    telemetry(town, "agent.dispatched", count=4)
    telemetry(town, "agent.dispatch_failed", count=3, at=ago(minutes=10))
    telemetry(calm, "agent.dispatch_failed", count=2, at=ago(minutes=90))
    telemetry(calm, "pr.awaiting_approval_detected", count=5)
    samples = scrape()
    assert value(samples, "gastown_merges_last_hour", town="acme") == 2
    assert value(samples, "gastown_merge_refusals_last_hour", town="acme") == 1
    assert value(samples, "gastown_dispatches_last_hour", town="acme") == 4
    assert value(samples, "gastown_dispatch_failures_last_hour", town="acme") == 3
    assert value(samples, "gastown_dispatch_failures_last_hour", town="calm") == 0
    assert value(samples, "gastown_merges_last_hour", town="calm") == 0
    assert value(samples, "gastown_dispatch_failures_in_breaker_window", town="acme") == 3
    assert value(samples, "gastown_dispatch_breaker_open", town="acme") == 1
    assert value(samples, "gastown_dispatch_failures_in_breaker_window", town="calm") == 2
    assert value(samples, "gastown_dispatch_breaker_open", town="calm") == 0


def test_open_escalations_webhooks_and_paused_towns():
    town = TownFactory(slug="acme", paused=True, github_blocked_until=ago(minutes=-10))
    TownFactory(slug="calm", github_blocked_until=ago(minutes=10))
    BeadFactory(town=town, type=BeadType.ESCALATION, status=BeadStatus.OPEN)
    BeadFactory(town=town, type=BeadType.ESCALATION, status=BeadStatus.CLOSED)
    BeadFactory(town=town, type=BeadType.ISSUE, status=BeadStatus.OPEN)
    webhook("processed")
    webhook("processed")
    webhook("ignored")
    webhook("ignored", at=ago(hours=2))
    samples = scrape()
    assert value(samples, "gastown_escalations_open", town="acme") == 1
    assert value(samples, "gastown_escalations_open", town="calm") == 0
    assert value(samples, "gastown_webhook_deliveries_last_hour", outcome="processed") == 2
    assert value(samples, "gastown_webhook_deliveries_last_hour", outcome="ignored") == 1
    assert value(samples, "gastown_town_paused", town="acme") == 1
    assert value(samples, "gastown_town_paused", town="calm") == 0
    assert value(samples, "gastown_github_checks_paused", town="acme") == 1
    assert value(samples, "gastown_github_checks_paused", town="calm") == 0


# --- cost ---------------------------------------------------------------------------------


def _seed(towns: int, rows: int) -> None:
    for n in range(towns):
        town = TownFactory()
        for _ in range(rows):
            ReconcilerTickFactory(town=town, started_at=ago(minutes=n + 1))
            FeedbackCheckRunFactory(
                town=town,
                token=f"town:{town.slug}",
                graphql_remaining=100,
                core_remaining=9,
                graphql_reset_at=ago(minutes=-30),
                core_reset_at=ago(minutes=-30),
            )
            mr(town, Blocker.HUMAN_REVIEW, waiting_since=ago(hours=1))
            telemetry(town, "pr.merged")
            telemetry(town, "agent.dispatch_failed")
            BeadFactory(town=town, type=BeadType.ESCALATION)
            webhook("processed")


def test_a_scrape_runs_the_same_queries_at_any_size(django_assert_num_queries):
    _seed(towns=1, rows=1)
    with django_assert_num_queries(SCRAPE_QUERIES):
        small = scrape()
    _seed(towns=6, rows=5)
    with django_assert_num_queries(SCRAPE_QUERIES):
        large = scrape()
    assert len(large) > len(small)
    assert sum(v for (n, _), v in large.items() if n == "gastown_merges_last_hour") == 31


# --- from a real feedback check -------------------------------------------------------------


def test_a_feedback_check_records_what_the_metrics_show(fake_github, settings):
    town = TownFactory(slug="acme", code_review=False, auto_merge=False)
    town.set_github_token("ghp_townsecret_never_shown")
    town.save()
    rig = RigFactory(town=town, repo="octo/app")
    fake_github.create_repo("octo/app", required_approvals=1)
    for _ in range(3):
        make_mr(fake_github, rig)
    summary = check_prs()
    assert summary.checked == 3
    [run] = FeedbackCheckRun.objects.all()
    assert (run.town_id, run.token, run.checked, run.github_requests) == (
        town.pk,
        "town:acme",
        3,
        1,
    )
    assert run.graphql_points >= 1
    assert run.graphql_remaining is not None
    samples = scrape()
    assert value(samples, "gastown_prs_checked_last_hour", town="acme") == 3
    assert value(samples, "gastown_github_graphql_points_used_last_hour", token="town:acme") == (
        run.graphql_points
    )
    assert (
        value(samples, "gastown_github_rate_limit_remaining", token="town:acme", resource="graphql")
        == run.graphql_remaining
    )
    assert value(samples, "gastown_human_waits", town="acme", blocker="human_review") == 3
    text = render().decode()
    for secret in ("ghp_townsecret_never_shown", town.github_token_encrypted, "test-token"):
        assert secret not in text


def test_tokens_are_labelled_by_where_they_came_from_never_by_value(settings, monkeypatch):
    settings.GITHUB_TOKEN = "ghp_processwide"
    monkeypatch.setenv("ACME_GH_TOKEN", "ghp_fromenv")
    own = TownFactory(slug="own")
    own.set_github_token("ghp_own")
    by_env = TownFactory(slug="byenv", github_token_env="ACME_GH_TOKEN")
    shared = TownFactory(slug="shared")
    labels = [token_label(t, resolve_token(town_token(t))) for t in (own, by_env, shared)]
    assert labels == ["town:own", "env:ACME_GH_TOKEN", "GITHUB_TOKEN"]


def test_a_github_app_is_labelled_by_installation_account_shared_by_towns_on_it():
    """GitHub limits an App per installation, and an App has one installation per account:
    towns whose rigs live under one account share its budget; another account has its own."""
    from scm.credentials import ENV_APP, TOWN_APP, GitHubAppCredential

    app = GitHubAppCredential(app_id="42", private_key="-", source=TOWN_APP)
    acme, acme_too, beta, mixed, bare = (
        TownFactory(slug=s) for s in ["ab", "cd", "ef", "gh", "ij"]
    )
    RigFactory(town=acme, repo="Acme/web")
    RigFactory(town=acme_too, repo="acme/api")
    RigFactory(town=beta, repo="beta/app")
    RigFactory(town=mixed, repo="beta/lib")
    RigFactory(town=mixed, repo="acme/lib")
    labels = [token_label(t, app) for t in (acme, acme_too, beta, mixed, bare)]
    assert labels == ["app:42:acme", "app:42:acme", "app:42:beta", "app:42:acme+beta", "app:42:"]
    deployment = GitHubAppCredential(app_id="7", private_key="-", source=ENV_APP)
    assert token_label(acme, deployment) == "app:7:acme"


def test_points_spent_per_hour_per_token_sum_the_towns_sharing_it(settings):
    settings.GASTOWN_GITHUB_POINTS_PER_HOUR = 4500
    acme, beta = TownFactory(slug="acme"), TownFactory(slug="beta")
    FeedbackCheckRunFactory(town=acme, started_at=ago(minutes=70), graphql_points=50)
    FeedbackCheckRunFactory(
        town=acme,
        started_at=ago(minutes=30),
        graphql_points=30,
        conditional_requests=10,
        not_modified=9,
    )
    FeedbackCheckRunFactory(
        town=beta, started_at=ago(minutes=2), graphql_points=12, conditional_requests=5
    )
    samples = scrape()
    token = "GITHUB_TOKEN"
    assert value(samples, "gastown_github_graphql_points_used_last_hour", token=token) == 42
    assert value(samples, "gastown_github_graphql_points_budget_per_hour", token=token) == 4500
    conditional = "gastown_github_conditional_requests_last_hour"
    assert value(samples, conditional, token=token, answer="not_modified") == 9
    assert value(samples, conditional, token=token, answer="ok") == 6
