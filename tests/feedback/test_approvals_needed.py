"""The MR says how many approvals its PR still needs, from GitHub's own count (domain.md §8),
and says it without a number when GitHub does not show the count to the token."""

from __future__ import annotations

from beads.sentences import merge_request_status
from tests.feedback.conftest import REPO, make_mr, reload, run


def _sentence(mr) -> str:
    return merge_request_status(merge_request=reload(mr)).text


def test_the_sentence_counts_down_the_approvals_still_needed(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=2)
    mr = make_mr(fake_github, rig)
    fake_github.request_review(REPO, mr.pr_number, login="alice")
    fake_github.request_review(REPO, mr.pr_number, login="bob")
    run(clock)
    assert reload(mr).approvals_missing == 2
    assert _sentence(mr) == "needs 2 approvals from alice or bob"

    fake_github.approve(REPO, mr.pr_number, by="bob")
    clock.advance(minutes=1)
    run(clock)
    assert _sentence(mr) == "needs 1 approval from alice"


def test_one_required_approval_reads_as_one(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    fake_github.request_review(REPO, mr.pr_number, login="alice")
    run(clock)
    assert _sentence(mr) == "needs 1 approval from alice"


def test_a_ruleset_count_reads_the_same(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=2, rulesets=True)
    mr = make_mr(fake_github, rig)
    fake_github.request_review(REPO, mr.pr_number, login="alice")
    run(clock)
    assert _sentence(mr) == "needs 2 approvals from alice"


def test_no_permission_to_read_protection_degrades_to_no_number(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=2, protection_visible=False)
    mr = make_mr(fake_github, rig)
    fake_github.request_review(REPO, mr.pr_number, login="alice")
    run(clock)
    mr = reload(mr)
    assert mr.awaiting_approval and mr.approvals_missing is None
    assert _sentence(mr) == "needs approval from alice"
