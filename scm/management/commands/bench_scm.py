"""Measure the feedback check's cost: our batched GraphQL poll vs a per-PR REST baseline."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from github import Auth, Github

from scm.client import GitHubClient
from scm.credentials import GitHubCredential
from scm.fake.server import FakeGitHub
from scm.graphql import batch_size, batched, graphql_cost, snapshot_document
from scm.types import PullRequestRef


class Command(BaseCommand):
    help = "Poll N open PRs on an in-process fake GitHub; compare with per-PR REST calls."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prs", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["prs"]
        with FakeGitHub() as fake:
            fake.create_repo("bench/app", required_approvals=1, required_checks={"ci"})
            refs = []
            for i in range(count):
                pull = fake.create_pr("bench/app")
                fake.set_check("bench/app", pull.number, "ci", "success")
                if i % 3 == 0:
                    fake.approve("bench/app", pull.number)
                if i % 10 == 0:
                    fake.add_thread("bench/app", pull.number, body="please look")
                refs.append(PullRequestRef("bench/app", pull.number))

            client = GitHubClient(GitHubCredential("bench-token", "bench"), api_url=fake.url)
            fake.clear_requests()
            started = time.monotonic()
            results = client.fetch_snapshots(refs)
            graphql_seconds = time.monotonic() - started
            graphql_requests = len(fake.requests)
            points = sum(r.cost for r in fake.graphql_requests())
            estimate = sum(
                graphql_cost(d.query, d.variables)
                for d in (
                    snapshot_document(batch)
                    for batch in batched(refs, batch_size(snapshot_document))
                )
            )
            errors = sum(1 for r in results.values() if r.error)

            # Baseline: what a per-PR REST poll costs (pull, reviews, check runs, statuses),
            # through PyGithub against the same fake.
            github = Github(
                auth=Auth.Token("bench-token"),
                base_url=fake.url,
                retry=None,
                seconds_between_requests=0,
                seconds_between_writes=0,
                lazy=True,
            )
            repo = github.get_repo("bench/app")
            fake.clear_requests()
            started = time.monotonic()
            for ref in refs:
                rest_pull = repo.get_pull(ref.number)
                list(rest_pull.get_reviews())
                commit = repo.get_commit(rest_pull.head.sha)
                list(commit.get_check_runs())
                commit.get_combined_status()
            rest_seconds = time.monotonic() - started
            rest_requests = len(fake.requests)

        self.stdout.write(f"PRs polled:                {count} ({errors} errors)")
        self.stdout.write(
            f"GraphQL (ours):            {graphql_requests} requests, {points} points charged "
            f"({points / count:.3f} per PR; {estimate:.2f} before GitHub rounds each "
            f"document), {graphql_seconds:.2f}s"
        )
        self.stdout.write(
            f"REST baseline (per PR):    {rest_requests} requests "
            f"(counted against the 5,000/h REST budget), {rest_seconds:.2f}s"
        )
        self.stdout.write(
            f"Ratio:                     {rest_requests / max(1, graphql_requests):.0f}x fewer "
            f"requests; a 5,000-point hour covers {int(5000 / max(points, 1) * count)} PR checks"
        )
