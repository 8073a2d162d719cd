"""Feedback checks end to end: the real scm client against the fake GitHub over HTTP.

Time is passed explicitly (`now=`) to every pass; nothing sleeps. The fake's rate-limit reset
is real time, so the clock starts at the real now.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from beads.audit import Actor
from beads.models import Bead, BeadStatus, BeadType, MergeRequest
from beads.services import merge_request_create
from gastown.feedback.checks import CheckSummary, check_prs
from gastown.models import Rig, TelemetryEvent, Town
from scm.client import GitHubClient
from tests.factories import BeadFactory, RigFactory, TownFactory

REPO = "octo/app"


class Clock:
    def __init__(self) -> None:
        self.now = timezone.now().replace(microsecond=0)
        self.start = self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def town(db) -> Town:
    return TownFactory(code_review=False, auto_merge=True, auto_merge_delay_minutes=0)


@pytest.fixture
def rig(town) -> Rig:
    return RigFactory(town=town, repo=REPO)


@pytest.fixture
def repo(fake_github):
    return fake_github.create_repo(REPO)


def make_mr(fake, rig: Rig, *, number: int | None = None, repo: str = REPO) -> MergeRequest:
    """An issue bead in review and its MR with a real PR URL (a new PR unless `number`)."""
    if number is None:
        number = fake.create_pr(repo).number
    source = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_REVIEW)
    return merge_request_create(
        town=rig.town,
        rig=rig,
        title=f"MR for {source.title}",
        branch=f"polecat/{number}",
        target_branch="main",
        actor=Actor("test"),
        source=source,
        pr_url=fake.pr_url(repo, number),
    )


def run(clock: Clock, **kwargs) -> CheckSummary:
    return check_prs(now=clock.now, **kwargs)


def events(name: str, **filters) -> list[TelemetryEvent]:
    return list(TelemetryEvent.objects.filter(name=name, **filters).order_by("pk"))


def reload(mr: MergeRequest) -> MergeRequest:
    return MergeRequest.objects.select_related("bead", "source").get(pk=mr.pk)


def rework_beads(mr: MergeRequest) -> list[Bead]:
    return list(Bead.objects.filter(type=BeadType.ISSUE, metadata__merge_request_id=mr.pk))


def escalations(key: str) -> list[Bead]:
    return list(Bead.objects.filter(type=BeadType.ESCALATION, metadata__escalation_key=key))


def rule_only_at_merge(fake_repo, **rule):
    """A client whose merge call meets a repository rule GraphQL's answers do not show
    (a ruleset GitHub's merge endpoint enforces while the merge state says CLEAN)."""

    class RuleAtMerge(GitHubClient):
        def merge(self, ref, **kwargs):
            before = {name: getattr(fake_repo, name) for name in rule}
            for name, value in rule.items():
                setattr(fake_repo, name, value)
            try:
                return super().merge(ref, **kwargs)
            finally:
                for name, value in before.items():
                    setattr(fake_repo, name, value)

    return RuleAtMerge
