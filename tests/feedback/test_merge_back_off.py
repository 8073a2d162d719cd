"""Merges back off (domain.md §5): after a 5xx or a time-out the PR is read before any new merge
call, and the calls are spaced by a back-off that grows while GitHub keeps failing."""

from __future__ import annotations

import time

from beads.models import BeadStatus, Blocker, MergeAttempt, MergeRefusalKind
from scm.client import GitHubClient
from tests.feedback.conftest import REPO, events, make_mr, reload, run


def _minutes_of_merge_calls(fake_github, mr, clock, minutes, **kwargs) -> list[int]:
    """A pass a minute; the minutes (from the first pass) at which a merge call went out."""
    sent = []
    for minute in range(minutes):
        before = len(fake_github.merge_calls(REPO, mr.pr_number))
        run(clock, **kwargs)
        if len(fake_github.merge_calls(REPO, mr.pr_number)) > before:
            sent.append(minute)
        clock.advance(minutes=1)
    return sent


def test_5xx_merge_answers_are_retried_with_a_growing_back_off(fake_github, town, rig, clock):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.add_fault("status", method="PUT", path="/merge$", status=502, times=None)

    sent = _minutes_of_merge_calls(fake_github, mr, clock, 70)

    # Back-offs of 1, 2, 4, 8, 16, then 30 minutes (the cap), not a call per pass.
    assert sent == [0, 1, 3, 7, 15, 31, 61]
    attempts = list(MergeAttempt.objects.filter(merge_request=mr).order_by("created_at"))
    assert [a.outcome for a in attempts] == ["transient"] * 7
    assert {a.refusal_kind for a in attempts} == {MergeRefusalKind.NO_ANSWER}
    assert [a.repeats for a in attempts] == [1, 2, 3, 4, 5, 6, 7]
    assert len(events("pr.merge_refused")) == 1  # the same answer again is no news
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.OPEN
    assert mr.blocker == Blocker.READY

    fake_github.clear_faults()  # GitHub is back: merged at the end of the back-off, once
    sent = _minutes_of_merge_calls(fake_github, mr, clock, 31)
    assert sent == [21]  # minute 91 of the whole run: 61 + 30
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_the_back_off_holds_a_merge_now_too(fake_github, town, rig, clock):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.add_fault("status", method="PUT", path="/merge$", status=503, times=1)
    run(clock)
    run(clock, town_ids=[town.pk])  # the PR is looked at at once ...
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1  # ... and not merged again
    clock.advance(minutes=1)
    run(clock)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_a_timed_out_merge_that_merged_closes_the_mr_without_a_second_call(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    # GitHub takes longer than the client waits, then merges.
    fake_github.add_fault("slow", method="PUT", path="/merge$", delay=2.0, times=1)

    def impatient(credential):
        return GitHubClient(credential, timeout=1.0)

    run(clock, client_factory=impatient)
    [call] = fake_github.merge_calls(REPO, mr.pr_number)
    assert reload(mr).bead.status == BeadStatus.OPEN
    [attempt] = MergeAttempt.objects.filter(merge_request=mr)
    assert (attempt.outcome, attempt.refusal_kind) == ("transient", MergeRefusalKind.NO_ANSWER)
    _until_answered(call)  # the call the client gave up on lands on GitHub

    for _ in range(5):
        run(clock)
        clock.advance(minutes=1)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.CLOSED
    assert mr.blocker == Blocker.MERGED
    assert mr.source.status == BeadStatus.CLOSED
    # Read from the PR: the commit the lost call made.
    merged_as = fake_github.pull(REPO, mr.pr_number).merge_commit_sha
    assert merged_as
    assert mr.merge_commit_sha == merged_as


def _until_answered(call, seconds: float = 5.0) -> None:
    """Wait (in real time, bounded) for the fake's thread to finish a call the client left:
    the simulated clock cannot move another thread."""
    deadline = time.monotonic() + seconds
    while call.status == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert call.status != 0
