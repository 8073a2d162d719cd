"""`manage.py bench`: seed realistic towns on the configured database and print one table of
what the issue's targets are about (README, "Performance"): reconciler tick time and queries,
the feedback pass's GitHub cost against the in-process fake GitHub, how many PRs one token
keeps fresh, and each dashboard page's and admin changelist's time and queries.

Run it on a scratch database: it leaves the seeded towns behind (named bench-*)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gastown.feedback.budget import CONDITIONAL_PER_MINUTE
from gastown.feedback.checks import check_prs
from gastown.management.bench_seed import SeededTown, make_due, seed_feedback_town, seed_town
from gastown.management.merge_latency import measure as measure_merge_latency
from gastown.reconciler.tick import reconcile_town
from gastown.services.telemetry import telemetry_rollup
from scm.client import GitHubClient
from scm.credentials import Credential
from scm.fake.server import FakeGitHub

POLL_SECONDS = 60
SAFETY_NET_SECONDS = 600
FAKE_REPO = "bench/fb"


@dataclass
class Hour:
    points: int
    graphql: int
    conditional: int
    not_modified: int


@dataclass
class Row:
    measure: str
    size: str
    ms: float | None = None
    queries: int | None = None
    note: str = ""


def _median_run(runs: int, fn: Callable[[], Any]) -> tuple[float, int]:
    """Median wall time (ms) and the query count of the last run."""
    times = []
    queries = 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1000)
        queries = len(ctx.captured_queries)
    return statistics.median(times), queries


class Command(BaseCommand):
    help = "Seed towns and print tick, feedback, token and page costs (README, Performance)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--active",
            default="1000,10000",
            help="Comma-separated active-bead counts, one town each (default 1000,10000).",
        )
        parser.add_argument("--closed-ratio", type=int, default=10)
        parser.add_argument(
            "--telemetry",
            type=int,
            default=None,
            help="Telemetry events in the largest town (default 10 per active bead).",
        )
        parser.add_argument("--prs", type=int, default=500, help="PRs in the feedback pass.")
        parser.add_argument("--runs", type=int, default=5, help="Runs per measure (median).")
        parser.add_argument(
            "--running",
            type=float,
            default=0.2,
            help="Share of the PRs with checks running in the hour's mix (default 0.2); "
            "the rest wait on a reviewer.",
        )
        parser.add_argument(
            "--quick",
            action="store_true",
            help="A CI-sized run: 200 active beads, 50 PRs, 3 runs, 1 approval each way.",
        )
        parser.add_argument(
            "--merge-runs",
            type=int,
            default=3,
            help="PRs approved with, and as many without, a webhook (0: skip the measure; "
            "each run without one takes up to a minute).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        merge_runs = options["merge_runs"]
        if options["quick"]:
            sizes, prs, runs, merge_runs = [200], 50, 3, min(merge_runs, 1)
        else:
            sizes = [int(x) for x in options["active"].split(",") if x.strip()]
            prs, runs = options["prs"], options["runs"]
        rows: list[Row] = []
        seeded: SeededTown | None = None
        for size in sizes:
            largest = size == max(sizes)
            telemetry = (options["telemetry"] or size * 10) if largest else 0
            started = time.monotonic()
            seeded_town = seed_town(
                active=size, closed_ratio=options["closed_ratio"], telemetry=telemetry
            )
            self.stderr.write(
                f"seeded {seeded_town.town.slug}: {seeded_town.active} active, "
                f"{seeded_town.closed} closed, {telemetry} telemetry "
                f"in {time.monotonic() - started:.1f}s"
            )
            if connection.vendor == "postgresql":
                # A town's tables have statistics; freshly bulk-loaded ones have none yet. And
                # GIN (trigram) indexes keep bulk-loaded rows in a pending list that every
                # search reads until a vacuum merges it (autovacuum does, in production).
                with connection.cursor() as cursor:
                    cursor.execute("VACUUM ANALYZE")
            rows.append(self._tick(seeded_town, runs))
            if largest:
                seeded = seeded_town
        rows.extend(self._feedback(prs, runs, options["running"]))
        assert seeded is not None
        rows.extend(self._pages(seeded, runs))
        if merge_runs > 0:
            rows.extend(self._approval_to_merge(merge_runs))
        self._print(rows)

    # --- measures --------------------------------------------------------------------------

    def _tick(self, seeded: SeededTown, runs: int) -> Row:
        # A dry run is the tick without apply: the snapshot and the rules, which are the cost
        # that grows with the town (apply is bounded by the per-tick caps).
        ms, queries = _median_run(
            runs, lambda: reconcile_town(seeded.town, now=timezone.now(), dry_run=True)
        )
        return Row(
            "reconciler tick (snapshot + plan)",
            f"{seeded.active} active / {seeded.closed} closed",
            ms,
            queries,
        )

    def _feedback(self, prs: int, runs: int, running: float) -> list[Row]:
        """One cold pass over every PR (all due), then an hour of passes a minute apart on
        a mix: `running` of the PRs with checks running (read every minute), the rest
        waiting on a reviewer (the safety net: a conditional request every 10 minutes,
        a full read every hour). The fake charges GraphQL points as GitHub documents and
        answers 304s as GitHub does, so the points and requests are counted, not assumed."""
        with FakeGitHub(web_url="https://github.com") as fake:
            fake.create_repo(FAKE_REPO, required_approvals=1, required_checks={"ci"})
            urls = []
            fast = round(prs * running)
            for i in range(prs):
                pull = fake.create_pr(FAKE_REPO)
                if i < fast:
                    fake.approve(FAKE_REPO, pull.number)
                    fake.set_check(FAKE_REPO, pull.number, "ci", None, status="in_progress")
                else:
                    fake.set_check(FAKE_REPO, pull.number, "ci", "success")
                urls.append(fake.pr_url(FAKE_REPO, pull.number))
            town, mr_ids = seed_feedback_town(repo=FAKE_REPO, pr_urls=urls)

            def factory(credential: Credential) -> GitHubClient:
                return GitHubClient(credential, api_url=fake.url)

            requests: list[int] = []
            points: list[int] = []

            def one_pass() -> None:
                make_due(mr_ids)
                fake.clear_requests()
                check_prs(town_ids=[town.pk], client_factory=factory)
                requests.append(len(fake.requests))
                points.append(sum(r.cost for r in fake.graphql_requests()))

            environment = {
                "GITHUB_TOKEN": "bench-token",
                "GITHUB_API_URL": fake.url,
                # Measure the cost, not the throttle.
                "GASTOWN_GITHUB_POINTS_PER_HOUR": 10**9,
            }
            with override_settings(GASTOWN_SAFETY_NET_SECONDS=0, **environment):
                ms, queries = _median_run(runs, one_pass)
            with override_settings(GASTOWN_SAFETY_NET_SECONDS=SAFETY_NET_SECONDS, **environment):
                hour = self._hour(fake, town.pk, mr_ids, factory)
        per_read = statistics.median(points) / prs
        budget = settings.GASTOWN_GITHUB_POINTS_PER_HOUR
        all_fast = int(budget / (per_read * 3600 / POLL_SECONDS)) if per_read else 0
        per_pr_hour = hour.points / prs
        by_points = int(budget / per_pr_hour) if per_pr_hour else 0
        conditional_per_pr_minute = hour.conditional / prs / 60
        by_rest = (
            int(CONDITIONAL_PER_MINUTE / conditional_per_pr_minute)
            if conditional_per_pr_minute
            else by_points
        )
        binding = "points" if by_points <= by_rest else "conditional requests"
        mix = f"{fast / prs:.0%} running checks"
        return [
            Row(
                "feedback pass",
                f"{prs} PRs",
                ms,
                queries,
                f"{statistics.median(requests):.0f} GitHub requests, {per_read:.3f} points/PR",
            ),
            Row(
                "feedback hour (a pass a minute)",
                f"{prs} PRs, {mix}",
                note=f"{hour.points} points ({per_pr_hour:.3f}/PR), {hour.graphql} GraphQL "
                f"documents, {hour.conditional} conditional requests ({hour.not_modified} 304)",
            ),
            Row(
                "PRs one token keeps fresh",
                f"{POLL_SECONDS}s poll, {SAFETY_NET_SECONDS // 60} min safety net",
                note=f"{min(by_points, by_rest)} at {mix} ({binding} bind; {by_points} by "
                f"points, {by_rest} by conditional requests); {all_fast} if all had "
                f"running checks (at {budget} points/hour)",
            ),
        ]

    def _hour(
        self,
        fake: FakeGitHub,
        town_id: int,
        mr_ids: list[int],
        factory: Callable[[Credential], GitHubClient],
    ) -> Hour:
        """A cold pass at minute 0, then the passes of minutes 1..60 (the 60th is the
        waiting PRs' hourly full read): what they cost is the hour's."""
        make_due(mr_ids)
        fake.budgets.clear()  # a fresh hour of GitHub's budget
        start = timezone.now()
        check_prs(town_ids=[town_id], client_factory=factory, now=start)
        fake.clear_requests()
        for minute in range(1, 61):
            check_prs(
                town_ids=[town_id],
                client_factory=factory,
                now=start + timedelta(minutes=minute),
            )
        graphql = fake.graphql_requests()
        return Hour(
            points=sum(r.cost for r in graphql),
            graphql=len(graphql),
            conditional=sum(1 for r in fake.requests if r.method == "GET"),
            not_modified=sum(1 for r in fake.requests if r.status == 304),
        )

    def _pages(self, seeded: SeededTown, runs: int) -> list[Row]:
        user_model = get_user_model()
        user = user_model.objects.filter(username="bench-admin").first()
        if user is None:
            user = user_model.objects.create_superuser("bench-admin", "", None)
        size = f"{seeded.active + seeded.closed} beads / {seeded.telemetry} telemetry"
        slug = seeded.town.slug
        # The closed days rolled up, as the reconciler's housekeeping keeps them.
        telemetry_rollup(town_ids=[seeded.town.pk])
        pages = [
            ("dashboard: towns", reverse("dashboard:towns")),
            ("dashboard: overview", reverse("dashboard:overview", args=[slug])),
            ("dashboard: awaiting approval", reverse("dashboard:awaiting", args=[slug])),
            ("dashboard: convoys", reverse("dashboard:convoys", args=[slug])),
            ("dashboard: bead", reverse("dashboard:bead", args=[slug, seeded.some_bead_id])),
            ("dashboard: telemetry", reverse("dashboard:telemetry", args=[slug])),
            ("dashboard: reconciler", reverse("dashboard:reconciler", args=[slug])),
            ("admin: beads", reverse("admin:beads_bead_changelist")),
            ("admin: beads search", reverse("admin:beads_bead_changelist") + "?q=widget+42"),
            ("admin: merge requests", reverse("admin:beads_mergerequest_changelist")),
            ("admin: bead events", reverse("admin:beads_beadevent_changelist")),
            ("admin: agents", reverse("admin:gastown_agent_changelist")),
            ("admin: convoys", reverse("admin:gastown_convoy_changelist")),
            ("admin: telemetry", reverse("admin:gastown_telemetryevent_changelist")),
            ("admin: reconciler ticks", reverse("admin:gastown_reconcilertick_changelist")),
        ]
        rows = []
        # Pages render without collectstatic's manifest: the bench measures views, not assets.
        storages = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        with override_settings(ALLOWED_HOSTS=["*"], SECURE_SSL_REDIRECT=False, STORAGES=storages):
            client = Client()
            client.force_login(user)
            for name, url in pages:
                status: list[int] = []

                def get(url: str = url, status: list[int] = status) -> None:
                    status.append(client.get(url).status_code)

                ms, queries = _median_run(runs, get)
                note = "" if set(status) == {200} else f"HTTP {sorted(set(status))}"
                rows.append(Row(name, size, ms, queries, note))
        return rows

    def _approval_to_merge(self, runs: int) -> list[Row]:
        measured = measure_merge_latency(
            webhook_runs=runs, polling_runs=runs, log=self.stderr.write
        )
        rows = []
        for name, seconds, target in (
            ("approval to merge, with a webhook", measured.webhook, "target 5 s"),
            ("approval to merge, without", measured.polling, f"target {POLL_SECONDS} s poll"),
        ):
            merged = [s for s in seconds if s is not None]
            note = (
                f"median {statistics.median(merged):.1f} s, max {max(merged):.1f} s ({target})"
                if merged
                else f"no merge ({target})"
            )
            if len(merged) < len(seconds):
                note += f"; {len(seconds) - len(merged)} of {len(seconds)} not merged in time"
            ms = statistics.median(merged) * 1000 if merged else None
            rows.append(Row(name, f"{len(seconds)} PRs", ms, None, note))
        return rows

    def _print(self, rows: list[Row]) -> None:
        header = ("measure", "size", "median ms", "queries", "note")
        table = [
            (
                r.measure,
                r.size,
                "" if r.ms is None else f"{r.ms:.0f}",
                "" if r.queries is None else str(r.queries),
                r.note,
            )
            for r in rows
        ]
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
        self.stdout.write(f"database: {connection.vendor}")
        self.stdout.write(
            "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
        )
        self.stdout.write("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for t in table:
            self.stdout.write(
                "| " + " | ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)) + " |"
            )
