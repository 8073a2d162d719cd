"""GitHub's own auto-merge and the hold / opt-in labels (domain.md §4, §5): a PR GitHub will
merge by itself is never merged a second time; a hold label keeps any PR from being merged,
says who added it, and its removal makes the PR due at once; an opt-in label gates
auto-merge."""

from __future__ import annotations

import json

from beads.models import BeadStatus, Blocker, MergeAttempt
from gastown.models import Rig
from tests.feedback.conftest import REPO, make_mr, reload, run
from tests.webhooks.test_github_webhooks import SECRET, deliver


def test_pr_with_github_auto_merge_on_is_left_to_github(fake_github, repo, rig, clock):
    n = fake_github.create_pr(REPO).number
    fake_github.set_check(REPO, n, "ci", None, status="in_progress", required=True)
    fake_github.enable_auto_merge(REPO, n, by="carol", method="SQUASH")
    mr = make_mr(fake_github, rig, number=n)

    run(clock)
    mr = reload(mr)
    assert mr.blocker == Blocker.CHECKS_PENDING
    assert mr.blocker_detail == (
        "GitHub merges it once its rules are met: auto-merge (squash) enabled by carol"
    )

    fake_github.set_check(REPO, n, "ci", "success")
    for _ in range(3):
        clock.advance(minutes=1)
        run(clock)
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.CLOSED and mr.blocker == Blocker.MERGED
    assert fake_github.merge_calls(REPO, n) == []  # GitHub merged it, gastown never called


def test_use_native_auto_merge_enables_github_auto_merge_once(fake_github, rig, clock):
    fake_github.create_repo(REPO)  # GitHub's allow_auto_merge is on
    rig.town.use_native_auto_merge = True
    rig.town.save()
    n = fake_github.create_pr(REPO).number
    fake_github.set_check(REPO, n, "ci", None, status="in_progress", required=True)
    mr = make_mr(fake_github, rig, number=n)

    for _ in range(3):
        run(clock)
        clock.advance(minutes=1)
    mr = reload(mr)
    [attempt] = MergeAttempt.objects.filter(merge_request=mr)
    assert (attempt.method, attempt.outcome) == ("auto_merge", "auto_merge_done")
    assert "auto-merge (squash) enabled by" in mr.blocker_detail
    assert fake_github.pull(REPO, n).auto_merge is not None

    fake_github.set_check(REPO, n, "ci", "success")
    run(clock)
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert fake_github.merge_calls(REPO, n) == []


def test_native_auto_merge_refused_leaves_the_merge_to_gastown(fake_github, rig, clock):
    """The repository does not allow auto-merge: asked once per head, then merged as usual."""
    fake_github.create_repo(REPO, allow_auto_merge=False)
    rig.town.use_native_auto_merge = True
    rig.town.save()
    n = fake_github.create_pr(REPO).number
    fake_github.set_check(REPO, n, "ci", None, status="in_progress", required=True)
    mr = make_mr(fake_github, rig, number=n)
    for _ in range(3):
        run(clock)
        clock.advance(minutes=1)
    [attempt] = MergeAttempt.objects.filter(merge_request=mr)
    assert attempt.outcome == "auto_merge_not_allowed"

    fake_github.set_check(REPO, n, "ci", "success")
    run(clock)
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert len(fake_github.merge_calls(REPO, n)) == 1


def test_hold_label_keeps_a_ready_pr_and_says_who_added_it(fake_github, repo, rig, clock):
    mr = make_mr(fake_github, rig)
    fake_github.add_label(REPO, mr.pr_number, "gastown:hold", by="dave")

    for _ in range(3):
        run(clock)
        clock.advance(minutes=1)
    mr = reload(mr)
    assert mr.blocker == Blocker.HELD_BY_LABEL
    assert mr.blocker_detail == "held by the label gastown:hold, added by dave"
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    assert not mr.awaiting_approval


def test_removing_the_hold_label_makes_the_pr_due_and_it_merges(
    fake_github, repo, rig, clock, client, settings
):
    settings.GITHUB_WEBHOOK_SECRET = SECRET
    mr = make_mr(fake_github, rig)
    fake_github.add_label(REPO, mr.pr_number, "gastown:hold", by="dave")
    run(clock)
    assert reload(mr).blocker == Blocker.HELD_BY_LABEL

    payload = fake_github.remove_label(REPO, mr.pr_number, "gastown:hold", by="dave")
    payload["pull_request"]["html_url"] = mr.pr_url
    assert deliver(client, "pull_request", json.dumps(payload).encode()).status_code == 202
    assert reload(mr).check_requested_at is not None

    run(clock)  # the same minute: due at once, not after the poll interval
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_a_rig_overrides_the_hold_label(fake_github, repo, rig, clock):
    Rig.objects.filter(pk=rig.pk).update(hold_label="do-not-merge")
    mr = make_mr(fake_github, rig)
    fake_github.add_label(REPO, mr.pr_number, "gastown:hold")  # the town's: not this rig's
    other = make_mr(fake_github, rig)
    fake_github.add_label(REPO, other.pr_number, "Do-Not-Merge")
    run(clock)
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert reload(other).blocker == Blocker.HELD_BY_LABEL


def test_require_label_merges_only_opted_in_prs(fake_github, repo, rig, clock):
    rig.town.require_label = "automerge"
    rig.town.save()
    plain, opted = make_mr(fake_github, rig), make_mr(fake_github, rig)
    fake_github.add_label(REPO, opted.pr_number, "automerge")
    for _ in range(3):
        run(clock)
        clock.advance(minutes=1)
    plain, opted = reload(plain), reload(opted)
    assert opted.bead.status == BeadStatus.CLOSED
    assert plain.blocker == Blocker.READY and plain.bead.status != BeadStatus.CLOSED
    assert plain.blocker_detail == "not merged by gastown without the label automerge"
    assert fake_github.merge_calls(REPO, plain.pr_number) == []
