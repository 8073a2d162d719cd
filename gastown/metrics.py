"""Prometheus metrics (`/metrics`), read from the database at scrape time.

Everything a team alerts on is already a row: reconciler ticks, feedback check records (PRs
checked and the GitHub budget per token), merge requests and their blocker, telemetry
(merges, refusals, dispatches), escalations, webhook deliveries and the towns themselves. So
the collector reads those rows when Prometheus scrapes, with the same few queries whatever
the number of towns or rows, and any web process answers the same numbers: several gunicorn
workers and the qcluster workers need no shared in-process counters (no prometheus_client
multiprocess mode, no directory to share).

Rows are pruned (ticks and check records after a day), so counts over time are gauges over
the last hour (`*_last_hour`), not counters: alert on them directly, not through rate().

The endpoint is off unless METRICS_TOKEN is set; then it needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db.models import Avg, Count, Max, Min, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from beads.models import ACTIVE_MR_STATES, ACTIVE_STATUSES, Bead, BeadType, MergeRequest
from gastown.models import (
    FeedbackCheckRun,
    ReconcilerTick,
    TelemetryEvent,
    Town,
    WebhookDelivery,
    WebhookDeliveryStatus,
)

WINDOW = timedelta(hours=1)

#: Telemetry counted over the window (docs/domain.md §6), by the metric that shows it.
TELEMETRY_METRICS = {
    "pr.merged": ("gastown_merges_last_hour", "PRs merged by gastown in the last hour."),
    "pr.merge_refused": (
        "gastown_merge_refusals_last_hour",
        "Merge calls GitHub refused in the last hour.",
    ),
    "agent.dispatched": ("gastown_dispatches_last_hour", "Agent dispatches in the last hour."),
    "agent.dispatch_failed": (
        "gastown_dispatch_failures_last_hour",
        "Failed agent dispatches in the last hour.",
    ),
    "pr.poll_failed": (
        "gastown_pr_poll_failures_last_hour",
        "MRs failed by the PR error policy in the last hour.",
    ),
    "convoy.landed": ("gastown_convoys_landed_last_hour", "Convoys landed in the last hour."),
    "convoy.failed": ("gastown_convoys_failed_last_hour", "Convoys failed in the last hour."),
}


class _Town(NamedTuple):
    slug: str
    paused: bool
    github_blocked_until: datetime | None
    breaker_threshold: int
    breaker_window_minutes: int


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class GastownCollector:
    """A prometheus_client collector: each scrape runs the same nine queries."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now

    def collect(self) -> Iterator[Metric]:
        now = self._now or timezone.now()
        since = now - WINDOW
        towns = {
            pk: _Town(*row)
            for pk, *row in Town.objects.values_list("pk", *_Town._fields).order_by("slug")
        }
        slug = {pk: town.slug for pk, town in towns.items()}
        yield from self._towns(towns, now)
        yield from self._ticks(slug, since)
        yield from self._feedback_checks(slug, since, now)
        yield from self._merge_requests(slug, now)
        yield from self._telemetry(slug, since)
        yield from self._breaker(towns, now)
        yield from self._escalations(slug)
        yield from self._webhooks(since)

    def _towns(self, towns: dict[int, _Town], now: datetime) -> Iterator[Metric]:
        paused = _gauge("gastown_town_paused", "1 when a team lead paused the town.", ["town"])
        blocked = _gauge(
            "gastown_github_checks_paused",
            "1 while the town's PR checks wait for a GitHub reset or a token fix.",
            ["town"],
        )
        for town in towns.values():
            until = town.github_blocked_until
            paused.add_metric([town.slug], float(town.paused))
            blocked.add_metric([town.slug], float(until is not None and until > now))
        yield paused
        yield blocked

    def _ticks(self, slug: dict[int, str], since: datetime) -> Iterator[Metric]:
        last = _gauge(
            "gastown_reconciler_last_tick_timestamp_seconds",
            "When the town's last reconciler tick started (Unix time).",
            ["town"],
        )
        count = _gauge(
            "gastown_reconciler_ticks_last_hour", "Reconciler ticks in the last hour.", ["town"]
        )
        duration = _gauge(
            "gastown_reconciler_tick_seconds_last_hour",
            "Reconciler tick duration over the last hour (stat: max or avg).",
            ["town", "stat"],
        )
        recent = Q(started_at__gte=since)
        rows = (
            ReconcilerTick.objects.values("town_id")
            .annotate(
                last=Max("started_at"),
                ticks=Count("pk", filter=recent),
                longest=Max("duration_ms", filter=recent),
                mean=Avg("duration_ms", filter=recent),
            )
            .order_by()
        )
        for row in rows:
            town = slug.get(row["town_id"])
            if town is None:
                continue
            last.add_metric([town], row["last"].timestamp())
            count.add_metric([town], row["ticks"])
            if row["ticks"]:
                duration.add_metric([town, "max"], row["longest"] / 1000)
                duration.add_metric([town, "avg"], float(row["mean"]) / 1000)
        yield from (last, count, duration)

    def _feedback_checks(
        self, slug: dict[int, str], since: datetime, now: datetime
    ) -> Iterator[Metric]:
        checked = _gauge("gastown_prs_checked_last_hour", "PR checks in the last hour.", ["town"])
        errors = _gauge(
            "gastown_pr_check_errors_last_hour",
            "PR checks that got an error from GitHub in the last hour.",
            ["town"],
        )
        requests = _gauge(
            "gastown_github_requests_last_hour",
            "HTTP requests to GitHub by the PR checks in the last hour, per token.",
            ["token"],
        )
        points = _gauge(
            "gastown_github_graphql_points_used_last_hour",
            "GraphQL points the PR checks spent in the last hour, per token.",
            ["token"],
        )
        budget = _gauge(
            "gastown_github_graphql_points_budget_per_hour",
            "GraphQL points per hour the PR checks may spend per token "
            "(GASTOWN_GITHUB_POINTS_PER_HOUR, shared by the towns using it).",
            ["token"],
        )
        conditional = _gauge(
            "gastown_github_conditional_requests_last_hour",
            "Safety-net REST reads of PRs in the last hour, per token, by GitHub's answer "
            "(not_modified: a 304, free; ok: a 200, the PR changed or its ETag was learnt).",
            ["token", "answer"],
        )
        remaining = _gauge(
            "gastown_github_rate_limit_remaining",
            "The token's remaining GitHub budget as GitHub last told it (until its reset).",
            ["token", "resource"],
        )
        reset = _gauge(
            "gastown_github_rate_limit_reset_timestamp_seconds",
            "When the token's GitHub budget resets (Unix time).",
            ["token", "resource"],
        )
        per_town: Counter[tuple[int, str]] = Counter()
        per_token: Counter[tuple[str, str]] = Counter()
        recent = (
            FeedbackCheckRun.objects.filter(started_at__gte=since)
            .values("town_id", "token")
            .annotate(
                checked=Sum("checked"),
                errors=Sum("errors"),
                requests=Sum("github_requests"),
                points=Sum("graphql_points"),
                conditional=Sum("conditional_requests"),
                not_modified=Sum("not_modified"),
            )
            .order_by()
        )
        for row in recent:
            per_town[row["town_id"], "checked"] += row["checked"] or 0
            per_town[row["town_id"], "errors"] += row["errors"] or 0
            per_token[row["token"], "requests"] += row["requests"] or 0
            per_token[row["token"], "points"] += row["points"] or 0
            per_token[row["token"], "conditional"] += row["conditional"] or 0
            per_token[row["token"], "not_modified"] += row["not_modified"] or 0
        for pk, town in slug.items():
            checked.add_metric([town], per_town[pk, "checked"])
            errors.add_metric([town], per_town[pk, "errors"])
        for token in sorted({token for token, _ in per_token}):
            requests.add_metric([token], per_token[token, "requests"])
            points.add_metric([token], per_token[token, "points"])
            budget.add_metric([token], settings.GASTOWN_GITHUB_POINTS_PER_HOUR)
            unchanged = per_token[token, "not_modified"]
            conditional.add_metric([token, "not_modified"], unchanged)
            conditional.add_metric([token, "ok"], per_token[token, "conditional"] - unchanged)

        # The newest budget per token and resource, in one query: the newest record of each
        # token that heard about GraphQL, and the newest that heard about REST.
        latest_graphql = (
            FeedbackCheckRun.objects.filter(graphql_remaining__isnull=False)
            .values("token")
            .annotate(newest=Max("pk"))
            .values("newest")
        )
        latest_core = (
            FeedbackCheckRun.objects.filter(core_remaining__isnull=False)
            .values("token")
            .annotate(newest=Max("pk"))
            .values("newest")
        )
        budgets: dict[tuple[str, str], tuple[int, datetime | None]] = {}
        for run in FeedbackCheckRun.objects.filter(
            Q(pk__in=latest_graphql) | Q(pk__in=latest_core)
        ).order_by("pk"):
            for resource in ("graphql", "core"):
                left = getattr(run, f"{resource}_remaining")
                at = getattr(run, f"{resource}_reset_at")
                if left is not None:
                    budgets[run.token, resource] = (left, at)
        for (token, resource), (left, at) in sorted(budgets.items()):
            if at is not None and at <= now:
                continue  # GitHub has refilled it since: what we knew is stale
            remaining.add_metric([token, resource], left)
            if at is not None:
                reset.add_metric([token, resource], at.timestamp())
        yield from (checked, errors, requests, points, budget, conditional, remaining, reset)

    def _merge_requests(self, slug: dict[int, str], now: datetime) -> Iterator[Metric]:
        by_blocker = _gauge(
            "gastown_merge_requests",
            "Open merge requests with a PR, by what the PR waits on (none: not checked yet).",
            ["town", "blocker"],
        )
        waits = _gauge(
            "gastown_human_waits",
            "PRs waiting on a human (a reviewer), by their current blocker.",
            ["town", "blocker"],
        )
        oldest = _gauge(
            "gastown_human_wait_oldest_seconds",
            "How long the longest wait on a human has lasted, by current blocker.",
            ["town", "blocker"],
        )
        rows = (
            MergeRequest.objects.filter(state__in=ACTIVE_MR_STATES)
            .exclude(pr_url="")
            .values("bead__town_id", "blocker")
            .annotate(
                count=Count("pk"),
                waiting=Count("pk", filter=Q(waiting_since__isnull=False)),
                since=Min("waiting_since"),
            )
            .order_by()
        )
        for row in rows:
            town = slug.get(row["bead__town_id"])
            if town is None:
                continue
            labels = [town, row["blocker"] or "none"]
            by_blocker.add_metric(labels, row["count"])
            if row["waiting"]:
                waits.add_metric(labels, row["waiting"])
                oldest.add_metric(labels, max(0.0, (now - row["since"]).total_seconds()))
        yield from (by_blocker, waits, oldest)

    def _telemetry(self, slug: dict[int, str], since: datetime) -> Iterator[Metric]:
        counts = Counter(
            {
                (row["town_id"], row["name"]): row["count"]
                for row in TelemetryEvent.objects.filter(
                    created_at__gte=since, name__in=list(TELEMETRY_METRICS)
                )
                .values("town_id", "name")
                .annotate(count=Count("pk"))
                .order_by()
            }
        )
        for name, (metric, documentation) in TELEMETRY_METRICS.items():
            family = _gauge(metric, documentation, ["town"])
            for pk, town in slug.items():
                family.add_metric([town], counts[pk, name])
            yield family

    def _breaker(self, towns: dict[int, _Town], now: datetime) -> Iterator[Metric]:
        """The dispatch circuit breaker as the reconciler's rule sees it (rules.breaker_open):
        failed dispatches within the town's window, against its threshold."""
        failures = _gauge(
            "gastown_dispatch_failures_in_breaker_window",
            "Failed dispatches within the town's circuit-breaker window.",
            ["town"],
        )
        open_ = _gauge(
            "gastown_dispatch_breaker_open",
            "1 while too many failed dispatches stop dispatch in the town.",
            ["town"],
        )
        widest = max((town.breaker_window_minutes for town in towns.values()), default=0)
        recent: dict[int, list[datetime]] = defaultdict(list)
        for town_id, at in TelemetryEvent.objects.filter(
            name="agent.dispatch_failed", created_at__gte=now - timedelta(minutes=widest)
        ).values_list("town_id", "created_at"):
            recent[town_id].append(at)
        for pk, town in towns.items():
            start = now - timedelta(minutes=town.breaker_window_minutes)
            count = sum(1 for at in recent[pk] if at >= start)
            failures.add_metric([town.slug], count)
            open_.add_metric([town.slug], float(count >= town.breaker_threshold))
        yield from (failures, open_)

    def _escalations(self, slug: dict[int, str]) -> Iterator[Metric]:
        family = _gauge("gastown_escalations_open", "Open escalations for a human.", ["town"])
        counts = dict(
            Bead.objects.filter(type=BeadType.ESCALATION, status__in=ACTIVE_STATUSES)
            .values("town_id")
            .annotate(count=Count("pk"))
            .order_by()
            .values_list("town_id", "count")
        )
        for pk, town in slug.items():
            family.add_metric([town], counts.get(pk, 0))
        yield family

    def _webhooks(self, since: datetime) -> Iterator[Metric]:
        family = _gauge(
            "gastown_webhook_deliveries_last_hour",
            "GitHub webhook deliveries accepted in the last hour, by outcome.",
            ["outcome"],
        )
        counts = dict(
            WebhookDelivery.objects.filter(received_at__gte=since)
            .values("status")
            .annotate(count=Count("pk"))
            .order_by()
            .values_list("status", "count")
        )
        for status in WebhookDeliveryStatus.values:
            family.add_metric([status], counts.get(status, 0))
        yield family


def render(now: datetime | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GastownCollector(now))
    return generate_latest(registry)


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("Metrics are disabled: set METRICS_TOKEN.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not constant_time_compare(given.strip(), token):
        response = HttpResponse("A valid bearer token is required.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
