"""The steps of tests/test_side_effect_crashes.py, each run in a process of its own against
the test's SQLite file: `python -m tests.crash_steps STEP [SECONDS]`.

setup_* write a town in the state that makes the next tick or check take one side effect;
`tick` and `check` run the reconciler's tick and the feedback check `SECONDS` from now (the
time a lease takes to pass, without sleeping); `show` prints what the test asserts on, as
JSON."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import django

REPO = "acme/app"
FEATURE_BRANCH = "convoy/land-it"


def setup_landing_pr() -> None:
    """A landing convoy whose landing MR is open without its PR: R5 hands it to the
    refinery and opens the PR."""
    from beads.audit import Actor
    from beads.services import merge_request_create
    from tests.factories import ConvoyFactory, RigFactory

    rig = RigFactory(repo=REPO)
    convoy = ConvoyFactory(
        town=rig.town, rig=rig, status="landing", landing_attempts=1, feature_branch=FEATURE_BRANCH
    )
    merge_request_create(
        town=rig.town,
        rig=rig,
        title=f"Land convoy: {convoy.title}",
        branch=FEATURE_BRANCH,
        target_branch="main",
        actor=Actor.reconciler(),
        landing_convoy=convoy,
    )


def setup_feature_branch() -> None:
    """A review-then-land convoy with work and no feature branch yet: rule C creates it."""
    from beads.models import Bead
    from tests.factories import ConvoyFactory, RigFactory

    rig = RigFactory(repo=REPO)
    convoy = ConvoyFactory(town=rig.town, rig=rig, feature_branch=FEATURE_BRANCH)
    Bead.objects.create(
        town=rig.town, rig=rig, convoy=convoy, title="Part of the convoy", created_by="test"
    )


def setup_dispatch() -> None:
    """An open issue of a rig: B1 dispatches it to a new polecat."""
    from beads.models import Bead
    from tests.factories import RigFactory

    rig = RigFactory(repo=REPO)
    Bead.objects.create(town=rig.town, rig=rig, title="Fix the login", created_by="test")


def setup_ready_pr() -> None:
    """A merge request whose PR #1 is ready, with auto-merge at once and no code review."""
    from beads.audit import Actor
    from beads.models import BeadStatus
    from beads.services import merge_request_create
    from tests.factories import BeadFactory, RigFactory, TownFactory

    town = TownFactory(code_review=False, auto_merge=True, auto_merge_delay_minutes=0)
    rig = RigFactory(town=town, repo=REPO)
    source = BeadFactory(town=town, rig=rig, status=BeadStatus.IN_REVIEW)
    merge_request_create(
        town=town,
        rig=rig,
        title="Ready",
        branch="polecat/ready",
        target_branch="main",
        actor=Actor("test"),
        source=source,
        pr_url=f"https://github.com/{REPO}/pull/1",
    )


def _later(seconds: str):
    from django.utils import timezone

    return timezone.now() + timedelta(seconds=float(seconds))


def tick(seconds: str = "0") -> None:
    from gastown.models import Town
    from gastown.reconciler.tick import reconcile_town

    for town in Town.objects.all():
        reconcile_town(town, now=_later(seconds))


def check(seconds: str = "0") -> None:
    from gastown.feedback.checks import check_prs

    print(check_prs(now=_later(seconds)).summary())


def show() -> None:
    from beads.models import MergeRequest
    from gastown.models import Agent, Convoy, SideEffectIntent

    print(
        json.dumps(
            {
                "merge_requests": list(
                    MergeRequest.objects.values("pk", "state", "pr_url", "blocker")
                ),
                "intents": list(
                    SideEffectIntent.objects.order_by("pk").values(
                        "key", "kind", "outcome", "attempts"
                    )
                ),
                "agents": list(Agent.objects.values("name", "role", "hooked_bead_id")),
                "convoys": [
                    {"branch_created": c.feature_branch_created_at is not None}
                    for c in Convoy.objects.all()
                ],
            },
            default=str,
        )
    )


if __name__ == "__main__":
    django.setup()
    step, *args = sys.argv[1:]
    globals()[step](*args)
