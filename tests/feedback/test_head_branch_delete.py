"""After gastown merged an MR's PR, a rig with delete_head_branch deletes its head branch
(domain.md §5): never the default branch, never a convoy's feature branch still in use."""

from __future__ import annotations

from beads.models import BeadStatus, MergeRequest
from gastown.models import ConvoyStatus, Rig
from tests.factories import ConvoyFactory
from tests.feedback.conftest import REPO, make_mr, reload, run


def _pr_on_its_branch(fake, rig, branch):
    """An MR whose PR's head is `branch` (make_mr names the MR's branch polecat/N)."""
    pull = fake.create_pr(REPO, head=branch)
    mr = make_mr(fake, rig, number=pull.number)
    MergeRequest.objects.filter(pk=mr.pk).update(branch=branch)
    return reload(mr), branch


def test_the_head_branch_is_deleted_after_gastown_merged(fake_github, repo, rig, clock):
    Rig.objects.filter(pk=rig.pk).update(delete_head_branch=True)
    mr, branch = _pr_on_its_branch(fake_github, rig, "polecat/fix-login")
    assert fake_github.branch_sha(REPO, branch) is not None

    run(clock)

    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert fake_github.branch_sha(REPO, branch) is None


def test_the_head_branch_stays_without_the_rig_setting(fake_github, repo, rig, clock):
    mr, branch = _pr_on_its_branch(fake_github, rig, "polecat/fix-login")
    run(clock)
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert fake_github.branch_sha(REPO, branch) is not None


def test_a_feature_branch_a_live_convoy_uses_is_never_deleted(fake_github, repo, rig, clock):
    Rig.objects.filter(pk=rig.pk).update(delete_head_branch=True)
    ConvoyFactory(town=rig.town, rig=rig, status=ConvoyStatus.LANDING, feature_branch="convoy/9")
    mr, branch = _pr_on_its_branch(fake_github, rig, "convoy/9")
    run(clock)
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert fake_github.branch_sha(REPO, branch) is not None


def test_a_pr_whose_head_is_the_default_branch_keeps_it(fake_github, repo, rig, clock):
    Rig.objects.filter(pk=rig.pk).update(delete_head_branch=True)
    pull = fake_github.create_pr(REPO, head="main", base="release")
    fake_github.create_branch(REPO, "release")
    mr = make_mr(fake_github, rig, number=pull.number)
    MergeRequest.objects.filter(pk=mr.pk).update(branch="main", target_branch="release")
    run(clock)
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert fake_github.branch_sha(REPO, "main") is not None
