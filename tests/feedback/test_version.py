"""Optimistic concurrency: one version column tells a check pass that its copy is stale."""

from __future__ import annotations

from django.db.models import F

from beads.models import MergeRequest
from gastown.feedback import checks
from tests.feedback.conftest import REPO, make_mr, reload, run


def test_a_pass_whose_copy_is_older_than_the_rows_version_writes_nothing(
    fake_github, town, rig, clock, monkeypatch
):
    """Another writer moved the version after this pass read the MR: the pass's snapshot is
    dropped, and the next pass stores its own."""
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    real_observe = checks.observe

    def observe_after_another_write(*args, **kwargs):
        MergeRequest.objects.filter(pk=mr.pk).update(version=F("version") + 1)
        return real_observe(*args, **kwargs)

    monkeypatch.setattr(checks, "observe", observe_after_another_write)
    assert run(clock).changed == 0
    assert (reload(mr).blocker, reload(mr).version) == ("", 1)

    monkeypatch.setattr(checks, "observe", real_observe)
    clock.advance(minutes=2)
    assert run(clock).changed == 1
    assert (reload(mr).blocker, reload(mr).version) == ("human_review", 2)


def test_a_read_dropped_as_stale_is_asked_again_at_once(
    fake_github, town, rig, clock, monkeypatch, django_capture_on_commit_callbacks
):
    """The dropped read may be the newer one (a webhook's news, read after another pass that
    read before it stored): the PR is asked again at once, not at its cadence (a waiting
    PR's is ten minutes), and a check is queued for it."""
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    real_observe = checks.observe
    queued: list[int] = []

    def observe_after_another_write(*args, **kwargs):
        MergeRequest.objects.filter(pk=mr.pk).update(version=F("version") + 1)
        return real_observe(*args, **kwargs)

    monkeypatch.setattr(checks, "observe", observe_after_another_write)
    monkeypatch.setattr(checks, "enqueue_feedback_check", lambda town_id: queued.append(town_id))
    with django_capture_on_commit_callbacks(execute=True):
        assert run(clock).changed == 0
    assert reload(mr).check_requested_at is not None
    assert queued == [town.pk]

    monkeypatch.setattr(checks, "observe", real_observe)
    assert run(clock).changed == 1  # no time passed: asked for, so due
    assert reload(mr).check_requested_at is None
    assert reload(mr).blocker == "human_review"


def test_every_stored_check_moves_the_version(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock)
    assert reload(mr).version == 1
    clock.advance(minutes=2)
    run(clock)  # nothing changed on GitHub: timestamps only, no version
    assert reload(mr).version == 1
    fake_github.approve(REPO, mr.pr_number, by="alice")
    clock.advance(minutes=2)
    run(clock)
    assert reload(mr).version > 1
