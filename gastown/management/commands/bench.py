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
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gastown.feedback.checks import check_prs
from gastown.management.bench_seed import SeededTown, make_due, seed_feedback_town, seed_town
from gastown.reconciler.tick import reconcile_town
from gastown.services.telemetry import telemetry_rollup
from scm.client import GitHubClient
from scm.credentials import Credential
from scm.fake.server import FakeGitHub

#: GitHub's GraphQL budget per token and hour (docs.github.com, "Rate limits for the GraphQL API").
POINTS_PER_HOUR = 5000
POLL_SECONDS = 60
FAKE_REPO = "bench/fb"


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
            "--quick",
            action="store_true",
            help="A CI-sized run: 200 active beads, 50 PRs, 3 runs.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["quick"]:
            sizes, prs, runs = [200], 50, 3
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
        rows.extend(self._feedback(prs, runs))
        assert seeded is not None
        rows.extend(self._pages(seeded, runs))
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

    def _feedback(self, prs: int, runs: int) -> list[Row]:
        with FakeGitHub(web_url="https://github.com") as fake:
            fake.create_repo(FAKE_REPO, required_approvals=1, required_checks={"ci"})
            urls = []
            for i in range(prs):
                pull = fake.create_pr(FAKE_REPO)
                fake.set_check(FAKE_REPO, pull.number, "ci", "success")
                if i % 3:
                    fake.approve(FAKE_REPO, pull.number)  # a third wait on a human
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

            with override_settings(GITHUB_TOKEN="bench-token", GITHUB_API_URL=fake.url):
                ms, queries = _median_run(runs, one_pass)
        per_pr = statistics.median(points) / prs
        fresh = int(POINTS_PER_HOUR / (per_pr * 3600 / POLL_SECONDS)) if per_pr else 0
        return [
            Row(
                "feedback pass",
                f"{prs} PRs",
                ms,
                queries,
                f"{statistics.median(requests):.0f} GitHub requests, {per_pr:.3f} points/PR",
            ),
            Row(
                "PRs one token keeps fresh",
                f"{POLL_SECONDS}s poll",
                note=f"{fresh} (at {POINTS_PER_HOUR} points/hour)",
            ),
        ]

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
