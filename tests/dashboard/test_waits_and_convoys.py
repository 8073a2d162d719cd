"""Waiting on whom, the convoy page, and MR status in plain words (issue 15: 1, 2, 3, 4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from beads.models import BeadStatus, Blocker, MergeRequestState
from beads.sentences import failure_words, merge_request_status
from gastown.models import ConvoyStatus, MergeMode
from tests.factories import (
    AgentFactory,
    BeadFactory,
    ConvoyFactory,
    MergeRequestFactory,
    TelemetryEventFactory,
)

pytestmark = pytest.mark.django_db


def waiting(town, rig, *, hours=1.0, number=7, reviewers=("alice",), **kwargs):
    fields = dict(
        bead__town=town,
        bead__rig=rig,
        bead__status=BeadStatus.IN_PROGRESS,
        state=MergeRequestState.IN_PROGRESS,
        pr_url=f"https://github.com/{rig.repo}/pull/{number}",
        blocker=Blocker.HUMAN_REVIEW,
        review_decision="REVIEW_REQUIRED",
        merge_state_status="BLOCKED",
        requested_reviewers=list(reviewers),
        waiting_since=timezone.now() - timedelta(hours=hours),
    )
    return MergeRequestFactory(**{**fields, **kwargs})


# --- waiting on whom --------------------------------------------------------------------


def test_waits_are_grouped_by_whom_they_wait_on_longest_kept_first(lead_client, town, rig):
    convoy = ConvoyFactory(town=town, rig=rig, title="Faster sign-in")
    agent = AgentFactory(town=town, rig=rig, name="polecat-7")
    source = BeadFactory(town=town, rig=rig, convoy=convoy, assignee=agent, title="Sign-in")
    waiting(town, rig, hours=2, number=11, reviewers=["bob"])
    both = waiting(
        town, rig, hours=30, number=12, reviewers=["alice", "acme/platform"], source=source
    )
    waiting(town, rig, hours=1, number=13, reviewers=[])
    content = lead_client.get("/towns/acme/waiting/").content.decode()
    headings = [content.index(f"<h2>{who} ") for who in ("acme/platform", "alice", "bob")]
    assert headings == sorted(headings), "the longest-kept first, ties by name"
    assert content.index("<h2>bob ") < content.index("<h2>nobody named ")
    assert content.count(f'href="{both.pr_url}"') == 2, "under each reviewer it asks"
    assert ">acme/web#12</a>" in content
    assert "polecat-7" in content
    assert f'href="/towns/acme/convoys/{convoy.pk}/">Faster sign-in</a>' in content


def test_a_wait_past_the_threshold_stands_out(lead_client, town, rig):
    town.human_wait_escalation_hours = 24
    town.save()
    waiting(town, rig, hours=25, number=1, reviewers=["alice"])
    waiting(town, rig, hours=3, number=2, reviewers=["bob"])
    content = lead_client.get("/towns/acme/waiting/").content.decode()
    alice, bob = content.index("<h2>alice "), content.index("<h2>bob ")
    assert "past the threshold" in content[alice:bob]
    assert "past the threshold" not in content[bob:]


def test_a_rig_threshold_overrides_the_towns(lead_client, town, rig):
    rig.human_wait_escalation_hours = 2
    rig.save()
    waiting(town, rig, hours=3, reviewers=["alice"])
    assert "past the 2 h threshold" in lead_client.get("/towns/acme/waiting/").content.decode()


def test_nothing_waiting_says_so(lead_client, town, rig):
    waiting(town, rig, blocker=Blocker.READY, waiting_since=None)
    assert "Nothing waits on anyone" in lead_client.get("/towns/acme/waiting/").content.decode()


def test_overview_shows_counts_per_reviewer_and_the_oldest_waits(lead_client, town, rig):
    waiting(town, rig, hours=5, number=1, reviewers=["alice"])
    waiting(town, rig, hours=2, number=2, reviewers=["alice", "bob"])
    content = lead_client.get("/towns/acme/").content.decode()
    assert "Waiting on whom" in content
    assert ">alice</a>: 2 PRs" in content
    assert ">bob</a>: 1 PR," in content
    oldest = content.index("Oldest waits")
    assert content.index("acme/web#1<", oldest) < content.index("acme/web#2<", oldest)


def test_another_towns_waits_are_not_shown(lead_client, town, rig):
    from tests.factories import RigFactory, TownFactory

    other = TownFactory(slug="other")
    waiting(other, RigFactory(town=other, repo="other/web"), reviewers=["mallory"])
    assert "mallory" not in lead_client.get("/towns/acme/waiting/").content.decode()


# --- plain words ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            {"blocker": Blocker.HUMAN_REVIEW, "requested_reviewers": ["alice"]},
            "needs approval from alice",
        ),
        (
            {"blocker": Blocker.HUMAN_REVIEW, "requested_reviewers": ["alice", "bob", "acme/x"]},
            "needs approval from alice, bob or acme/x",
        ),
        ({"blocker": Blocker.CHECKS_FAILING, "failing_checks": ["lint"]}, "CI failing: lint"),
        ({"blocker": Blocker.CHECKS_PENDING}, "waiting on checks"),
        (
            {
                "blocker": Blocker.HUMAN_REVIEW,
                "requested_reviewers": ["alice"],
                "approvals_missing": 1,
            },
            "needs 1 approval from alice",
        ),
        (
            {
                "blocker": Blocker.HUMAN_REVIEW,
                "requested_reviewers": ["alice", "bob"],
                "approvals_missing": 2,
            },
            "needs 2 approvals from alice or bob",
        ),
        (
            {"blocker": Blocker.HUMAN_REVIEW, "requested_reviewers": [], "approvals_missing": 2},
            "needs 2 approvals (no reviewer named)",
        ),
        ({"blocker": Blocker.QUEUED}, "queued for merge"),
        ({"blocker": Blocker.QUEUED, "queue_position": 3}, "queued for merge, position 3"),
        ({"blocker": Blocker.READY}, "ready to merge"),
        ({"blocker": Blocker.CONFLICT, "target_branch": "main"}, "conflicts with main"),
        ({"blocker": Blocker.NONE}, "waiting for the first check of its PR"),
        ({"pr_url": ""}, "waiting for its pull request to be opened"),
        ({"state": MergeRequestState.MERGED}, "merged"),
    ],
)
def test_each_blocker_and_state_reads_as_a_sentence(fields, text):
    mr = MergeRequestFactory(**{"pr_url": "https://github.com/acme/web/pull/1", **fields})
    assert merge_request_status(merge_request=mr).text == text


def test_a_failed_mr_says_why():
    mr = MergeRequestFactory(
        state=MergeRequestState.FAILED,
        bead__status=BeadStatus.FAILED,
        bead__failure_code="pr_closed",
    )
    assert merge_request_status(merge_request=mr).text == (
        "failed: its PR was closed without merging"
    )


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("timed_out", "timed out"),
        ("failed_by_user", "failed by a team lead"),
        # A code written by another tool or a shell reads as it is, without underscores.
        ("lost_in_space", "lost in space"),
    ],
)
def test_failure_codes_read_as_words(code, words):
    assert failure_words(code) == words


def test_failure_pages_show_words_with_the_code_as_tooltip(lead_client, town):
    bead = BeadFactory(
        town=town, status=BeadStatus.FAILED, failure_code="timed_out", closed_at=timezone.now()
    )
    content = lead_client.get(f"/towns/acme/beads/{bead.pk}/").content.decode()
    assert '<span title="timed_out">timed out</span>' in content
    overview = lead_client.get("/towns/acme/").content.decode()
    assert '<span title="timed_out">timed out</span>' in overview


def test_a_requested_check_shows_checking_now_until_it_runs():
    now = timezone.now()
    mr = MergeRequestFactory(
        pr_url="https://github.com/acme/web/pull/1",
        blocker=Blocker.HUMAN_REVIEW,
        last_checked_at=now - timedelta(minutes=1),
        check_requested_at=now,
    )
    assert merge_request_status(merge_request=mr).pending == "checking now"
    mr.last_checked_at = now + timedelta(seconds=1)
    assert merge_request_status(merge_request=mr).pending == ""


def test_an_mr_reads_the_same_on_the_list_the_bead_page_and_the_admin(
    lead_client, admin_client, town, rig
):
    mr = waiting(town, rig, reviewers=["alice"])
    sentence = "needs approval from alice"
    assert sentence in lead_client.get("/towns/acme/awaiting/").content.decode()
    assert sentence in lead_client.get(f"/towns/acme/beads/{mr.bead_id}/").content.decode()
    for admin_page in (
        f"/admin/beads/mergerequest/{mr.pk}/change/",
        f"/admin/beads/bead/{mr.bead_id}/change/",
        "/admin/beads/mergerequest/",
    ):
        assert sentence in admin_client.get(admin_page).content.decode(), admin_page
    # GitHub's raw values only in the details
    bead_page = lead_client.get(f"/towns/acme/beads/{mr.bead_id}/").content.decode()
    raw = bead_page.index("REVIEW_REQUIRED")
    assert bead_page.rfind("<details", 0, raw) > bead_page.rfind("</details>", 0, raw)


def test_pages_name_beads_bd_n_and_prs_owner_repo_n(lead_client, town, rig):
    mr = waiting(town, rig, number=9)
    content = lead_client.get("/towns/acme/awaiting/").content.decode()
    assert f"bd-{mr.bead_id} " in content and ">acme/web#9</a>" in content
    confirm = lead_client.get(
        f"/towns/acme/overrides/merge_request_recheck/{mr.pk}/"
    ).content.decode()
    assert f"acme/web#9 · bd-{mr.bead_id}" in confirm
    assert "MR #" not in confirm and "Bead #" not in confirm


# --- the convoy page --------------------------------------------------------------------


def test_convoy_page_shows_beads_mrs_waits_attempts_suppression_and_timeline(
    lead_client, town, rig
):
    convoy = ConvoyFactory(
        town=town,
        rig=rig,
        title="Checkout",
        status=ConvoyStatus.LANDING,
        landing_attempts=2,
        respawn_suppressed_since=timezone.now() - timedelta(hours=1),
        suppressed_pr_url="https://github.com/acme/web/pull/40",
        suppressed_attempt=3,
    )
    issue = BeadFactory(town=town, rig=rig, convoy=convoy, title="Pay button")
    member = waiting(town, rig, number=41, source=issue, reviewers=["alice"])
    failed = MergeRequestFactory(
        bead__town=town,
        bead__rig=rig,
        bead__status=BeadStatus.FAILED,
        bead__failure_code="orphaned_review",
        state=MergeRequestState.FAILED,
        landing_convoy=convoy,
        pr_url="https://github.com/acme/web/pull/40",
    )
    BeadFactory(town=town, rig=rig, convoy=convoy, title="Done by hand", status="closed")
    BeadFactory(town=town, rig=rig, convoy=convoy, title="Not started")
    TelemetryEventFactory(town=town, convoy=convoy, name="reconciler.respawn_suppressed")
    TelemetryEventFactory(
        town=town, convoy=convoy, name="convoy.transition", label="landing", reason="all closed"
    )
    content = lead_client.get(f"/towns/acme/convoys/{convoy.pk}/").content.decode()
    assert "<h1>Checkout " in content
    # A closed bead without an MR has none; an open one has none yet.
    assert content.count(">none</span>") == 1 and content.count(">none yet</span>") == 1
    # The timeline in words, the event's name as the tooltip.
    assert '<strong title="convoy.transition">Convoy now landing: all closed</strong>' in content
    assert f"bd-{issue.pk} Pay button" in content
    assert ">acme/web#41</a>" in content and "needs approval from alice" in content
    assert (
        f">bd-{failed.bead_id}</a>" in content
        and "failed: nobody watched its PR for 30 minutes" in content
    )
    assert "attempt 3 not made" in content
    assert "Respawn suppressed: the PR waited on a person" in content
    assert "convoy.transition" in content
    assert content.count(f'href="{member.pr_url}"') >= 2, "in the waits and in the beads"


def test_a_landed_convoy_shows_when(lead_client, town, rig):
    landed_at = timezone.now() - timedelta(hours=3)
    convoy = ConvoyFactory(
        town=town, rig=None, merge_mode=MergeMode.REVIEW_AND_MERGE, status=ConvoyStatus.LANDED
    )
    convoy.landed_at = landed_at
    convoy.save()
    page = lead_client.get(f"/towns/acme/convoys/{convoy.pk}/").content.decode()
    assert "<dt>Landed</dt>" in page and "3 h ago" in page
    listing = lead_client.get("/towns/acme/convoys/?status=landed").content.decode()
    assert "landed <time" in listing
    assert f'href="/towns/acme/convoys/{convoy.pk}/"' in listing


def test_convoy_list_says_how_many_prs_wait_on_people(lead_client, town, rig):
    convoy = ConvoyFactory(town=town, rig=rig, title="Faster sign-in", status=ConvoyStatus.OPEN)
    for n in (1, 2):
        issue = BeadFactory(town=town, rig=rig, convoy=convoy, status=BeadStatus.IN_REVIEW)
        waiting(town, rig, number=n, source=issue)
    content = lead_client.get("/towns/acme/convoys/").content.decode()
    assert "0 / 2" in content and "2 PRs waiting on people" in content


def test_convoy_list_counts_each_convoys_own_waits_landing_included(lead_client, town, rig):
    convoy = ConvoyFactory(town=town, rig=rig, title="Checkout", status=ConvoyStatus.LANDING)
    other = ConvoyFactory(town=town, rig=rig, title="Search", status=ConvoyStatus.OPEN)
    member = BeadFactory(town=town, rig=rig, convoy=convoy, status=BeadStatus.IN_REVIEW)
    waiting(town, rig, number=1, source=member)
    waiting(town, rig, number=2, landing_convoy=convoy)
    BeadFactory(town=town, rig=rig, convoy=other, status=BeadStatus.CLOSED)
    waiting(town, rig, number=3, blocker=Blocker.READY, waiting_since=None, landing_convoy=other)
    rows = lead_client.get("/towns/acme/convoys/").context["page"].object_list
    counts = {c.title: (c.waiting_count, c.issues_closed, c.issues_total) for c in rows}
    assert counts == {"Checkout": (2, 0, 1), "Search": (0, 1, 1)}


def test_another_towns_convoy_is_not_found(lead_client, town):
    from tests.factories import TownFactory

    other = ConvoyFactory(town=TownFactory(slug="other"))
    assert lead_client.get(f"/towns/acme/convoys/{other.pk}/").status_code == 404


def test_every_count_of_waiting_prs_agrees(lead_client, town, rig):
    """The overview card, the Awaiting approval list, Waiting on whom and the per-reviewer
    counts on the overview count the same PRs: live ones, and the failed landing MR a
    suppression holds, never a merged or failed MR that kept its last snapshot."""
    waiting(town, rig, number=1, reviewers=["alice", "bob"])
    waiting(town, rig, number=2, reviewers=[])
    waiting(
        town,
        rig,
        number=3,
        state=MergeRequestState.MERGED,
        bead__status=BeadStatus.CLOSED,
    )
    waiting(
        town,
        rig,
        number=4,
        state=MergeRequestState.FAILED,
        bead__status=BeadStatus.FAILED,
    )
    held = waiting(
        town,
        rig,
        number=5,
        state=MergeRequestState.FAILED,
        bead__status=BeadStatus.FAILED,
        reviewers=["carol"],
    )
    convoy = ConvoyFactory(
        town=town,
        rig=rig,
        status=ConvoyStatus.LANDING,
        respawn_suppressed_since=timezone.now(),
        suppressed_landing_mr=held,
    )
    held.landing_convoy = convoy
    held.save(update_fields=["landing_convoy"])

    overview = lead_client.get("/towns/acme/").context["o"]
    page = lead_client.get("/towns/acme/awaiting/").context["page"]
    groups = lead_client.get("/towns/acme/waiting/").context["groups"]
    in_groups = {w.mr.pk for g in groups for w in g.waits}
    assert overview.awaiting_count == page.paginator.count == len(in_groups) == 3
    assert {w.mr.pk for g in overview.reviewers for w in g.waits} == in_groups
    assert sorted(g.who for g in groups) == ["alice", "bob", "carol", "nobody named"]


def test_the_overview_groups_agree_with_waiting_on_whom(lead_client, town, rig):
    """The overview counts from light rows; Waiting on whom builds every wait in full. Both
    show the same people, counts, overdue counts (a rig's threshold and the town's) and
    oldest waits; the overview's oldest waits carry the agent and the convoy."""
    from tests.factories import RigFactory

    town.human_wait_escalation_hours = 24
    town.save()
    strict = RigFactory(town=town, name="api", repo="acme/api", human_wait_escalation_hours=2)
    convoy = ConvoyFactory(town=town, rig=rig, title="Faster sign-in")
    agent = AgentFactory(town=town, rig=rig, name="polecat-9")
    source = BeadFactory(town=town, rig=rig, convoy=convoy, assignee=agent)
    waiting(town, rig, hours=30, number=1, reviewers=["alice", "bob"], source=source)
    waiting(town, rig, hours=3, number=2, reviewers=["bob"])
    waiting(town, strict, hours=3, number=3, reviewers=["bob", "carol"])
    waiting(town, strict, hours=1, number=4, reviewers=[])
    waiting(town, rig, hours=20, number=5, reviewers=["carol"], bead__rig=None)
    waiting(town, rig, number=6, reviewers=["alice"], waiting_since=None)
    for number in (7, 8):
        waiting(town, rig, hours=10 + number, number=number, reviewers=["dave"])

    def summary(groups):
        return [(g.who, g.count, g.overdue, g.oldest.mr.pk) for g in groups]

    overview = lead_client.get("/towns/acme/").context["o"]
    groups = lead_client.get("/towns/acme/waiting/").context["groups"]
    assert summary(overview.reviewers) == summary(groups)
    assert [(g.who, g.overdue) for g in overview.reviewers][:3] == [
        ("alice", 1),
        ("bob", 2),
        ("carol", 1),
    ]
    by_wait = sorted(
        {w.mr.pk: w for g in groups for w in g.waits}.values(),
        key=lambda w: -(w.waited or timedelta(0)),
    )
    assert [w.mr.pk for w in overview.oldest_waits] == [w.mr.pk for w in by_wait[:5]]
    first = overview.oldest_waits[0]
    assert (first.agent_name, first.convoy) == ("polecat-9", convoy)
    content = lead_client.get("/towns/acme/").content.decode()
    assert "polecat-9" in content
    assert ">carol</a>: 2 PRs" in content
