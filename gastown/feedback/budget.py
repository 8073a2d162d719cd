"""How much of its token's GitHub budget one town's PR check may spend (docs/domain.md §4,
"Budget").

A token's GraphQL points (GASTOWN_GITHUB_POINTS_PER_HOUR of GitHub's 5,000 an hour) are shared
by every town that uses it: each town gets a part in proportion to its live PRs, spread evenly
over time, so a town never spends another's part and a burst never empties the token for the
rest of the hour. What the towns spent is read from their FeedbackCheckRun rows (the same
rows /metrics reads), so every worker and process sees the same numbers without a shared
counter. When GitHub's own count (the newest `rateLimit.remaining` of the token) says less is
left, what is left is spread over the time to GitHub's reset instead.

The part becomes a number of PRs per pass (`reads`): whole GraphQL documents of the size
that costs the fewest points per PR (scm.graphql.batch_size). That number replaces the old
fixed cap of 1,000 PRs per pass; the PRs left over stay due and, being the oldest, go first
next time, so none starves. Safety-net reads of PRs that wait on a person are conditional
REST requests, free when GitHub answers 304, and have a budget of their own (`conditional`)
under GitHub's secondary limit for REST.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum

from beads.models import ACTIVE_MR_STATES, MergeRequest
from gastown.models import FeedbackCheckRun, Town
from scm.graphql import batch_size, snapshot_document

HOUR = timedelta(hours=1)
#: The passes a town's budget is replayed over (_bucket).
WINDOW = timedelta(minutes=10)
MINUTE = timedelta(minutes=1)
#: A town may save up this many minutes of its part (a skipped pass, a slow one).
BURST = 2
#: Conditional REST reads per minute and token. GitHub's secondary rate limit allows 900
#: points a minute on REST endpoints (a GET is 1) whether or not the answer is a 304
#: (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits);
#: the rest is left for merges and branch calls.
CONDITIONAL_PER_MINUTE = 800


@dataclass(frozen=True)
class PassBudget:
    points: int  # GraphQL points this pass may spend (whole documents)
    reads: int  # PRs it may read in full (whole documents within `points`)
    conditional: int  # safety-net conditional REST reads it may make
    share: float  # this town's part of the token (0..1)


def pass_budget(*, town: Town, token: str, now: datetime) -> PassBudget:
    """What this pass of `town`, asking GitHub with the token labelled `token`, may spend."""
    usage = {
        row["town_id"]: row
        for row in FeedbackCheckRun.objects.filter(token=token, started_at__gt=now - HOUR)
        .values("town_id")
        .annotate(
            conditional=Sum("conditional_requests", filter=Q(started_at__gt=now - MINUTE)),
        )
        .order_by()
    }
    sharing = {*usage, town.pk}
    live = dict(
        MergeRequest.objects.filter(bead__town_id__in=sharing, state__in=ACTIVE_MR_STATES)
        .exclude(pr_url="")
        .values("bead__town_id")
        .annotate(count=Count("pk"))
        .order_by()
        .values_list("bead__town_id", "count")
    )
    total = sum(max(1, live.get(pk, 0)) for pk in sharing)
    share = max(1, live.get(town.pk, 0)) / total

    per_minute = settings.GASTOWN_GITHUB_POINTS_PER_HOUR * share / 60
    newest = (
        FeedbackCheckRun.objects.filter(
            token=token, graphql_remaining__isnull=False, graphql_reset_at__gt=now
        )
        .order_by("-started_at", "-pk")
        .values_list("graphql_remaining", "graphql_reset_at")
        .first()
    )
    remaining, reset_at = newest or (None, None)
    if remaining is not None and reset_at is not None:
        # GitHub's own count: what is left, spread to its reset.
        per_minute = min(per_minute, remaining * share / (max(reset_at - now, MINUTE) / MINUTE))

    spent = FeedbackCheckRun.objects.filter(
        town=town, token=token, started_at__gt=now - WINDOW
    ).values_list("started_at", "graphql_points")
    documents = math.floor(_bucket(per_minute, spent.order_by("started_at"), now=now))

    # GitHub's secondary limit is per minute: no catching up here.
    conditional = CONDITIONAL_PER_MINUTE * share - (usage.get(town.pk, {}).get("conditional") or 0)
    return PassBudget(
        points=documents,
        reads=documents * batch_size(snapshot_document),
        conditional=max(0, math.floor(conditional)),
        share=share,
    )


def _bucket(per_minute: float, spent: Iterable[tuple[datetime, int]], *, now: datetime) -> float:
    """The town's part as a token bucket replayed over the window's passes: it fills at
    `per_minute` up to BURST minutes' worth (at least one point, so that a town whose part
    is under a point a minute still reads a document now and then), and each pass takes
    what it spent. A pass may spend what the bucket holds: on average exactly the part,
    one pass's shortfall carried to the next."""
    capacity = max(1.0, per_minute * BURST) if per_minute > 0 else 0.0
    level, at = capacity, now - WINDOW
    for started_at, points in spent:
        level = min(capacity, level + per_minute * ((started_at - at) / MINUTE)) - points
        at = started_at
    return max(0.0, min(capacity, level + per_minute * ((now - at) / MINUTE)))
