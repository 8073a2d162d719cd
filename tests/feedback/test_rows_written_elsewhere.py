"""Rows written outside the services (the Django shell, a fixture, an import) are checked and
merged exactly like rows written through them: a merge request holds only its pr_url, and
its repository and number are read from it."""

from __future__ import annotations

from django.core import serializers

from beads.models import Bead, BeadStatus, BeadType, MergeRequest
from tests.feedback.conftest import REPO, events, reload, run


def _shell_mr(rig, pr_url: str) -> MergeRequest:
    """What `MergeRequest.objects.create(bead=..., pr_url=...)` in the shell makes."""
    bead = Bead.objects.create(
        town=rig.town, rig=rig, type=BeadType.MERGE_REQUEST, title="typed in the shell"
    )
    return MergeRequest.objects.create(
        bead=bead, branch="polecat/shell", target_branch="main", pr_url=pr_url
    )


def test_an_mr_created_in_the_shell_with_only_its_pr_url_is_checked_and_merged(
    fake_github, rig, clock
):
    fake_github.create_repo(REPO)
    pull = fake_github.create_pr(REPO)
    mr = _shell_mr(rig, fake_github.pr_url(REPO, pull.number))

    run(clock)
    clock.advance(minutes=1)
    run(clock)

    mr = reload(mr)
    assert mr.last_error == ""
    assert len(fake_github.merge_calls(REPO, pull.number)) == 1
    assert fake_github.pull(REPO, pull.number).merged
    assert (mr.state, mr.bead.status) == ("merged", BeadStatus.CLOSED)
    assert [e.data["pr_url"] for e in events("pr.merged")] == [mr.pr_url]


def test_an_mr_loaded_from_a_fixture_is_checked_like_any_other(fake_github, rig, clock):
    fake_github.create_repo(REPO)
    pull = fake_github.create_pr(REPO)
    bead = Bead.objects.create(
        town=rig.town, rig=rig, type=BeadType.MERGE_REQUEST, title="from another tool"
    )
    fixture = serializers.serialize(
        "json",
        [
            MergeRequest(
                bead=bead,
                branch="polecat/import",
                target_branch="main",
                pr_url=fake_github.pr_url(REPO, pull.number),
                created_at=clock.now,
                updated_at=clock.now,
            )
        ],
    )
    for obj in serializers.deserialize("json", fixture):
        obj.save()
    mr = MergeRequest.objects.get(bead=bead)

    run(clock)

    mr = reload(mr)
    assert mr.head_sha == fake_github.pull(REPO, pull.number).head_sha
    assert (mr.state, mr.blocker) == ("merged", "merged")  # the town merges without delay


def test_a_malformed_pr_url_written_in_the_shell_fails_its_mr_once_saying_why(
    fake_github, rig, clock
):
    fake_github.create_repo(REPO)
    mr = _shell_mr(rig, "https://github.com/octo/app/issues/7")

    for _ in range(3):
        run(clock)
        clock.advance(minutes=1)

    mr = reload(mr)
    assert (mr.state, mr.bead.status) == ("failed", BeadStatus.FAILED)
    assert mr.bead.failure_code == "unrecognized_url"
    assert "points at an issue" in mr.bead.failure_message
    assert len(events("pr.poll_failed")) == 1
    assert mr.bead.events.filter(kind="status").count() == 1
