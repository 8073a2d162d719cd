"""Convoy landing end to end (domain.md §5): the real scm client against the fake GitHub, the
reconciler and the feedback check, with time moved explicitly."""

from datetime import timedelta

import pytest
from django.utils import timezone

from beads.audit import Actor
from beads.merge_requests import merge_request_transition
from beads.models import Bead, BeadStatus, MergeRequest
from gastown.feedback.checks import check_prs
from gastown.models import Convoy, ConvoyStatus, MergeMode, TelemetryEvent, Town
from gastown.reconciler import reconcile_town
from gastown.reconciler.rules import landing_cooldown
from tests.factories import BeadFactory, ConvoyFactory, RigFactory

pytestmark = pytest.mark.django_db
REPO = "acme/app"


class World:
    """One town with a review-then-land convoy whose work is done; main is protected."""

    def __init__(self, fake, *, code_review=False, members=1):
        self.fake = fake
        self.now = timezone.now()
        fake.create_repo(
            REPO, required_approvals=1, required_checks={"ci"}, protected_branches={"main"}
        )
        self.rig = RigFactory(repo=REPO, code_review=code_review)
        self.town = self.rig.town
        fake.create_branch(REPO, "convoy/billing")
        self.convoy = ConvoyFactory(
            town=self.town,
            rig=self.rig,
            merge_mode=MergeMode.REVIEW_THEN_LAND,
            feature_branch="convoy/billing",
            feature_branch_created_at=self.now,
        )
        for _ in range(members):
            BeadFactory(town=self.town, rig=self.rig, convoy=self.convoy, status=BeadStatus.CLOSED)

    def advance(self, **kwargs):
        self.now += timedelta(**kwargs)

    def tick(self):
        self.town.refresh_from_db()
        return reconcile_town(self.town, now=self.now)

    def check(self):
        return check_prs(town_ids=[self.town.pk], now=self.now)

    def cycle(self, rounds=1, **step):
        for _ in range(rounds):
            if step:
                self.advance(**step)
            self.tick()
            self.check()

    def landing_mrs(self):
        return list(
            MergeRequest.objects.filter(landing_convoy=self.convoy)
            .select_related("bead")
            .order_by("pk")
        )

    def landing_pr_waiting(self):
        """Drive the convoy until its landing PR is open, green and waits for approval."""
        self.cycle(4, seconds=1)
        [mr] = self.landing_mrs()
        assert mr.pr_number, "the product opened the landing PR"
        self.fake.set_check(REPO, mr.pr_number, "ci", "success")
        self.cycle(1, seconds=61)
        mr.refresh_from_db()
        assert mr.awaiting_approval and mr.blocker == "human_review"
        return mr

    def convoy_now(self):
        return Convoy.objects.get(pk=self.convoy.pk)

    def telemetry(self, name):
        return TelemetryEvent.objects.filter(town=self.town, name=name)


def test_convoy_with_every_bead_closed_opens_one_landing_pr(fake_github):
    world = World(fake_github)
    world.cycle(4, seconds=1)
    [mr] = world.landing_mrs()
    convoy = world.convoy_now()
    assert convoy.status == ConvoyStatus.LANDING
    assert convoy.landing_attempts == 1
    assert (mr.branch, mr.target_branch) == ("convoy/billing", "main")
    pull = fake_github.pull(REPO, mr.pr_number)
    assert (pull.head, pull.base) == ("convoy/billing", "main")


def test_landing_pr_waiting_on_approval_for_hours_is_left_alone(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    world.cycle(6 * 6, minutes=10)
    mr.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS
    assert mr.awaiting_approval
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    assert len(world.landing_mrs()) == 1
    convoy = world.convoy_now()
    assert (convoy.status, convoy.landing_attempts) == (ConvoyStatus.LANDING, 1)
    assert world.telemetry("pr.awaiting_approval_detected").count() == 1


def test_approval_lands_the_convoy_with_one_merge(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    world.cycle(10, minutes=30)
    fake_github.approve(REPO, mr.pr_number, by="alice")
    world.cycle(3, seconds=61)
    convoy = world.convoy_now()
    assert convoy.status == ConvoyStatus.LANDED and convoy.landed_at is not None
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    [resolved] = world.telemetry("pr.awaiting_approval_resolved")
    assert resolved.reason == "approved"
    assert resolved.duration_ms >= 5 * 3600 * 1000
    assert world.telemetry("convoy.landed").count() == 1


def test_failed_landing_mr_waiting_on_a_human_suppresses_the_respawn(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    # Something outside the rules (a person, a naive tool) fails the MR while it waits.
    merge_request_transition(
        merge_request=mr,
        transition="fail",
        actor=Actor("user:bob"),
        failure_code="failed_by_user",
        failure_message="timed out",
    )
    world.cycle(60, minutes=5)
    convoy = world.convoy_now()
    assert len(world.landing_mrs()) == 1
    assert convoy.landing_attempts == 1
    assert convoy.status == ConvoyStatus.LANDING
    assert convoy.respawn_suppressed_since is not None
    assert convoy.suppressed_landing_mr_id == mr.pk
    assert convoy.suppressed_attempt == 2
    [suppressed] = world.telemetry("reconciler.respawn_suppressed")
    assert suppressed.data["pr_url"] == mr.pr_url and suppressed.value == 2
    # The PR keeps being checked while the respawn is suppressed.
    mr.refresh_from_db()
    assert world.now - mr.last_checked_at <= timedelta(minutes=5)

    fake_github.approve(REPO, mr.pr_number)
    world.cycle(4, seconds=61)
    convoy = world.convoy_now()
    assert convoy.status == ConvoyStatus.LANDED
    assert convoy.landing_attempts == 1, "adopting the approved PR counts no attempt"
    assert convoy.respawn_suppressed_since is None
    landing = world.landing_mrs()
    assert len(landing) == 2 and landing[1].adopted and landing[1].pr_url == mr.pr_url
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    [ended] = world.telemetry("reconciler.respawn_suppression_ended")
    assert ended.label == "approved"
    assert world.telemetry("reconciler.respawn_suppressed").count() == 1
    # The held (failed) MR records no wait edges of its own: the held PR's end is the
    # suppression's event, so one wait is never counted twice.
    assert world.telemetry("pr.awaiting_approval_detected").count() == 1
    assert not world.telemetry("pr.awaiting_approval_resolved").exists()


def test_suppressed_pr_merged_on_github_lands_the_convoy(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    merge_request_transition(merge_request=mr, transition="fail", actor=Actor("user:bob"))
    world.cycle(2, minutes=1)
    fake_github.merge_externally(REPO, mr.pr_number)
    world.cycle(2, seconds=61)
    assert world.convoy_now().status == ConvoyStatus.LANDED
    assert world.telemetry("reconciler.respawn_suppression_ended").get().label == "merged"
    assert len(world.landing_mrs()) == 1


def test_suppressed_pr_closed_ends_the_suppression_with_an_escalation(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    merge_request_transition(merge_request=mr, transition="fail", actor=Actor("user:bob"))
    world.cycle(2, minutes=1)
    fake_github.close(REPO, mr.pr_number)
    world.cycle(2, seconds=61)
    convoy = world.convoy_now()
    assert convoy.respawn_suppressed_since is None
    assert world.telemetry("reconciler.respawn_suppression_ended").get().label == "closed"
    assert Bead.objects.filter(type="escalation", title__contains="closed while waiting").exists()
    world.cycle(3, minutes=5)
    assert world.convoy_now().landing_attempts == 2, "the normal respawn applies again"


def test_changes_requested_on_a_suppressed_pr_escalates_and_keeps_the_suppression(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    merge_request_transition(merge_request=mr, transition="fail", actor=Actor("user:bob"))
    world.cycle(2, minutes=1)
    fake_github.request_changes(REPO, mr.pr_number, by="alice")
    world.cycle(5, seconds=61)
    assert world.convoy_now().respawn_suppressed_since is not None
    escalations = Bead.objects.filter(type="escalation", title__contains="Changes requested")
    assert escalations.count() == 1
    assert len(world.landing_mrs()) == 1


def _fail_while_waiting(world, mr):
    """A naive tool (or a person) fails the landing MR while its PR waits on a reviewer."""
    merge_request_transition(merge_request=mr, transition="fail", actor=Actor("user:bob"))
    world.cycle(2, minutes=1)
    assert world.convoy_now().respawn_suppressed_since is not None


def test_suppression_ended_by_hand_stays_ended_and_the_normal_respawn_applies(fake_github):
    from gastown.services.overrides import convoy_end_suppression
    from tests.factories import UserFactory

    world = World(fake_github)
    mr = world.landing_pr_waiting()
    _fail_while_waiting(world, mr)

    convoy_end_suppression(convoy=world.convoy_now(), user=UserFactory(), now=world.now)
    world.cycle(20, minutes=5)

    convoy = world.convoy_now()
    assert convoy.respawn_suppressed_since is None
    assert world.telemetry("reconciler.respawn_suppressed").count() == 1
    assert world.telemetry("reconciler.respawn_suppression_ended").get().label == "by_user"
    assert convoy.landing_attempts == 2, "one respawn after the cool-down, counted"
    assert len(world.landing_mrs()) == 2


def test_deleted_suppressed_pr_ends_the_suppression_once_then_respawns(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    _fail_while_waiting(world, mr)

    fake_github.state.repo(REPO).pulls.pop(mr.pr_number)
    world.cycle(20, minutes=5)

    convoy = world.convoy_now()
    assert convoy.respawn_suppressed_since is None
    assert world.telemetry("reconciler.respawn_suppressed").count() == 1
    assert world.telemetry("reconciler.respawn_suppression_ended").get().label == "closed"
    assert (
        Bead.objects.filter(type="escalation", title__contains="closed while waiting").count() == 1
    )
    assert convoy.landing_attempts == 2, "the normal respawn applies"


def test_waiting_landing_pr_deleted_fails_its_mr_without_a_suppression(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()

    fake_github.state.repo(REPO).pulls.pop(mr.pr_number)
    world.cycle(10, minutes=5)

    mr.refresh_from_db()
    assert (mr.bead.status, mr.bead.failure_code) == (BeadStatus.FAILED, "pr_not_found")
    assert not world.telemetry("reconciler.respawn_suppressed").exists()
    assert world.convoy_now().landing_attempts == 2, "a new landing MR, counted"


def test_suppressed_pr_approved_while_checks_fail_is_adopted_not_left_suppressed(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    _fail_while_waiting(world, mr)

    fake_github.set_check(REPO, mr.pr_number, "ci", "failure")
    fake_github.approve(REPO, mr.pr_number, by="alice")
    world.cycle(3, seconds=61)

    convoy = world.convoy_now()
    assert convoy.respawn_suppressed_since is None
    assert world.telemetry("reconciler.respawn_suppression_ended").get().label == "approved"
    landing = world.landing_mrs()
    assert len(landing) == 2 and landing[1].adopted and landing[1].pr_url == mr.pr_url
    assert convoy.landing_attempts == 1, "adopting the approved PR counts no attempt"
    assert fake_github.merge_calls(REPO, mr.pr_number) == [], "checks fail: nothing merged"

    fake_github.set_check(REPO, mr.pr_number, "ci", "success")
    world.cycle(3, seconds=61)
    assert world.convoy_now().status == ConvoyStatus.LANDED
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1


def test_landing_fails_the_convoy_after_five_real_failures_with_cooldowns(fake_github):
    world = World(fake_github)
    world.cycle(2, seconds=1)  # open -> ready_to_land -> first landing MR
    for attempt in range(1, 6):
        landing = world.landing_mrs()
        assert len(landing) == attempt
        assert world.convoy_now().landing_attempts == attempt
        # A real failure: someone closes the landing PR on GitHub and the check notices.
        world.tick()  # opens the PR
        mr = MergeRequest.objects.get(pk=landing[-1].pk)
        assert mr.pr_number, "the product opened the landing PR"
        fake_github.close(REPO, mr.pr_number)
        world.check()
        mr.refresh_from_db()
        assert mr.bead.status == BeadStatus.FAILED
        if attempt == 5:
            break
        cooldown = landing_cooldown(attempt, world.town.effective())
        world.advance(seconds=cooldown.total_seconds() - 1)
        world.tick()
        assert len(world.landing_mrs()) == attempt, f"cool-down {cooldown} respected"
        world.advance(seconds=1)
        world.tick()
    world.advance(minutes=30)
    world.tick()
    convoy = world.convoy_now()
    assert convoy.status == ConvoyStatus.FAILED
    assert convoy.failure_reason == "landing_mr_exhausted"
    landing = world.landing_mrs()
    assert len({mr.pr_number for mr in landing}) == 5, "each attempt opened its own PR"
    assert {mr.bead.status for mr in landing} == {BeadStatus.FAILED}
    assert world.telemetry("convoy.failed").get().reason == "landing_mr_exhausted"


def test_town_with_a_custom_landing_cooldown_retries_on_its_own_schedule(fake_github):
    world = World(fake_github)
    Town.objects.filter(pk=world.town.pk).update(
        landing_cooldown_base_seconds=10, landing_cooldown_max_seconds=25
    )
    world.cycle(2, seconds=1)  # open -> ready_to_land -> first landing MR
    for attempt, cooldown in ((1, 20), (2, 25)):  # 10 s x 2^attempts, capped at 25 s
        world.tick()  # opens the PR
        mr = world.landing_mrs()[-1]
        fake_github.close(REPO, mr.pr_number)
        world.check()
        world.advance(seconds=cooldown - 1)
        world.tick()
        assert len(world.landing_mrs()) == attempt, f"cool-down of {cooldown} s respected"
        world.advance(seconds=1)
        world.tick()
        assert len(world.landing_mrs()) == attempt + 1, f"retried after {cooldown} s"


def test_default_landing_cooldown_doubles_up_to_thirty_minutes():
    defaults = Town().effective()
    assert [landing_cooldown(n, defaults).total_seconds() for n in (0, 1, 2, 5, 6, 10)] == [
        30,
        60,
        120,
        960,
        1800,
        1800,
    ]


def test_review_and_merge_convoy_lands_when_every_bead_is_closed(fake_github):
    rig = RigFactory()
    convoy = ConvoyFactory(town=rig.town, rig=rig, merge_mode=MergeMode.REVIEW_AND_MERGE)
    beads = [BeadFactory(town=rig.town, rig=rig, convoy=convoy, status=BeadStatus.CLOSED)]
    beads.append(BeadFactory(town=rig.town, rig=rig, convoy=convoy, status=BeadStatus.IN_REVIEW))
    reconcile_town(rig.town)
    assert Convoy.objects.get(pk=convoy.pk).status == ConvoyStatus.OPEN
    Bead.objects.filter(pk=beads[1].pk).update(status=BeadStatus.CLOSED)
    reconcile_town(rig.town)
    assert Convoy.objects.get(pk=convoy.pk).status == ConvoyStatus.LANDED


def test_failed_member_holds_the_convoy_with_one_escalation(fake_github):
    world = World(fake_github)
    failed = BeadFactory(
        town=world.town, rig=world.rig, convoy=world.convoy, status=BeadStatus.FAILED
    )
    world.cycle(5, minutes=1)
    assert world.convoy_now().status == ConvoyStatus.OPEN
    (escalation,) = Bead.objects.filter(type="escalation", title__contains="failed bead")
    # Beads are named bd-N in what people read, never #N (a PR number).
    assert f"Failed: bd-{failed.pk} {failed.title}." in escalation.body
    assert world.landing_mrs() == []


def test_starting_a_convoy_creates_its_feature_branch(fake_github):
    fake_github.create_repo(REPO)
    rig = RigFactory(repo=REPO)
    # A row written outside the services (the admin, a fixture) gets the name the API gives.
    convoy = ConvoyFactory(
        town=rig.town,
        rig=rig,
        title="Billing v2!",
        feature_branch="",
        merge_mode=MergeMode.REVIEW_THEN_LAND,
    )
    issue = BeadFactory(town=rig.town, rig=rig, convoy=convoy)
    result = reconcile_town(rig.town)
    assert [a.kind for a in result.applied] == ["ConvoyStart"], "no dispatch before the branch"
    convoy.refresh_from_db()
    assert convoy.feature_branch == f"convoy/{convoy.pk}-billing-v2"
    assert convoy.feature_branch_created_at is not None
    assert fake_github.branch_sha(REPO, convoy.feature_branch) is not None
    reconcile_town(rig.town)
    issue.refresh_from_db()
    assert issue.status == BeadStatus.IN_PROGRESS


def test_push_to_a_suppressed_pr_still_waiting_on_review_keeps_the_suppression(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    _fail_while_waiting(world, mr)

    # Someone pushes to the feature branch: checks re-run, the reviewer is still awaited.
    fake_github.push(REPO, mr.pr_number)
    fake_github.set_check(REPO, mr.pr_number, "ci", None, status="in_progress")
    world.cycle(3, seconds=61)
    mr.refresh_from_db()
    assert (mr.blocker, mr.review_decision) == ("checks_pending", "REVIEW_REQUIRED")

    convoy = world.convoy_now()
    assert convoy.respawn_suppressed_since is not None
    assert not world.telemetry("reconciler.respawn_suppression_ended").exists()
    assert len(world.landing_mrs()) == 1


def test_failing_checks_on_a_suppressed_pr_waiting_on_review_escalate_once(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    _fail_while_waiting(world, mr)

    # The held MR is terminal (no rework is asked) and rule W skips it: someone must be told.
    fake_github.set_check(REPO, mr.pr_number, "ci", "failure")
    world.cycle(6, seconds=61)
    mr.refresh_from_db()
    assert (mr.blocker, mr.review_decision) == ("checks_failing", "REVIEW_REQUIRED")

    [escalation] = Bead.objects.filter(
        type="escalation", title__startswith="Landing PR waiting for review"
    )
    assert mr.pr_url in escalation.body and "failing checks" in escalation.body
    assert world.convoy_now().respawn_suppressed_since is not None
    assert not world.telemetry("reconciler.respawn_suppression_ended").exists()
    assert len(world.landing_mrs()) == 1


def test_unresolved_threads_on_a_suppressed_pr_waiting_on_review_escalate_once(fake_github):
    world = World(fake_github)
    mr = world.landing_pr_waiting()
    _fail_while_waiting(world, mr)

    fake_github.add_thread(REPO, mr.pr_number, body="Why this way?")
    world.cycle(6, seconds=61)
    mr.refresh_from_db()
    assert (mr.blocker, mr.review_decision) == ("threads", "REVIEW_REQUIRED")

    [escalation] = Bead.objects.filter(
        type="escalation", title__startswith="Landing PR waiting for review"
    )
    assert mr.pr_url in escalation.body and "unresolved threads" in escalation.body
    assert world.convoy_now().respawn_suppressed_since is not None
    assert len(world.landing_mrs()) == 1


def test_failed_feature_branch_is_escalated_once_and_retried_each_minute(fake_github):
    rig = RigFactory(repo=REPO)  # the repository does not exist on GitHub yet
    convoy = ConvoyFactory(
        town=rig.town, rig=rig, feature_branch="", merge_mode=MergeMode.REVIEW_THEN_LAND
    )
    BeadFactory(town=rig.town, rig=rig, convoy=convoy)
    now = timezone.now()

    def branch_calls():
        return [r for r in fake_github.requests if r.path.startswith(f"/repos/{REPO}/git/")]

    for _ in range(10):
        reconcile_town(rig.town, now=now)
        now += timedelta(seconds=5)
    assert Bead.objects.filter(type="escalation", title__contains="feature branch").count() == 1
    assert 1 <= len(branch_calls()) <= 3, "one attempt a minute, not one a tick"
    convoy.refresh_from_db()
    assert convoy.feature_branch_created_at is None
    assert "feature branch" in convoy.failure_message

    fake_github.create_repo(REPO)
    reconcile_town(rig.town, now=now + timedelta(minutes=1))
    convoy.refresh_from_db()
    assert convoy.feature_branch_created_at is not None
    assert fake_github.branch_sha(REPO, convoy.feature_branch) is not None


def test_unreadable_town_token_stops_branch_creation_with_one_escalation(fake_github, settings):
    fake_github.create_repo(REPO)
    rig = RigFactory(repo=REPO)
    rig.town.set_github_token("town-secret-token")
    rig.town.save()
    settings.SECRET_KEY = "a-new-secret-key"  # the stored token can no longer be decrypted
    convoy = ConvoyFactory(
        town=rig.town, rig=rig, feature_branch="", merge_mode=MergeMode.REVIEW_THEN_LAND
    )
    BeadFactory(town=rig.town, rig=rig, convoy=convoy)
    now = timezone.now()
    for _ in range(10):
        reconcile_town(rig.town, now=now)
        now += timedelta(seconds=5)
    assert fake_github.requests == [], "no fall back to GITHUB_TOKEN"
    [escalation] = Bead.objects.filter(type="escalation", title__contains="feature branch")
    assert "decrypt" in escalation.body
    assert "town-secret-token" not in escalation.body
