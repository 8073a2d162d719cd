"""Agent report services (gastown/services/reports.py): effects, audit, refusals, ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from beads.models import (
    Bead,
    BeadDependency,
    BeadEvent,
    BeadStatus,
    BeadType,
    MergeRequest,
    ReviewStatus,
)
from gastown.models import AgentRole, AgentStatus, MergeMode
from gastown.services.reports import (
    ReportInvalid,
    ReportRefused,
    agent_fetch_assignment,
    agent_heartbeat,
    agent_report_done,
    agent_report_failure,
    refinery_report_review,
)
from tests.factories import (
    AgentFactory,
    BeadFactory,
    ConvoyFactory,
    MergeRequestFactory,
    RigFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PR = "https://github.com/acme/web/pull/7"


@pytest.fixture
def rig(db):
    return RigFactory(repo="acme/web", default_branch="trunk")


def hooked_polecat(bead, **kwargs):
    agent = AgentFactory(town=bead.town, rig=bead.rig, hooked_bead=bead, **kwargs)
    Bead.objects.filter(pk=bead.pk).update(assignee=agent)
    bead.refresh_from_db()
    return agent


@pytest.fixture
def issue(rig):
    return BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS, dispatch_attempts=1)


# --- heartbeat and assignment -----------------------------------------------------------


def test_heartbeat_stamps_time_and_wakes_an_idle_hooked_agent(issue):
    agent = hooked_polecat(issue, status=AgentStatus.IDLE)
    agent_heartbeat(agent=agent, now=NOW)
    agent.refresh_from_db()
    assert agent.last_heartbeat_at == NOW
    assert agent.last_activity_at == NOW
    assert agent.status == AgentStatus.WORKING
    assert agent.is_live(NOW + timedelta(seconds=30))


def test_heartbeat_of_an_agent_without_assignment_leaves_it_idle(rig):
    agent = AgentFactory(town=rig.town, rig=rig, status=AgentStatus.IDLE)
    agent_heartbeat(agent=agent, now=NOW)
    agent.refresh_from_db()
    assert agent.status == AgentStatus.IDLE
    assert agent.last_heartbeat_at == NOW


def test_fetch_assignment_returns_the_hooked_bead_and_starts_the_work(rig, settings):
    settings.AGENT_RUNTIME_URL = ""
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.OPEN)
    agent = hooked_polecat(bead, status=AgentStatus.IDLE)
    assert agent_fetch_assignment(agent=agent, now=NOW) == bead
    agent.refresh_from_db()
    bead.refresh_from_db()
    assert agent.status == AgentStatus.WORKING
    assert agent.last_heartbeat_at == NOW
    assert bead.status == BeadStatus.IN_PROGRESS
    assert BeadEvent.objects.filter(bead=bead, actor=f"agent:{agent.name}").exists()


def test_fetch_assignment_with_a_runtime_only_counts_as_heartbeat(issue, settings):
    settings.AGENT_RUNTIME_URL = "http://runtime.invalid/"
    agent = hooked_polecat(issue, status=AgentStatus.IDLE)
    assert agent_fetch_assignment(agent=agent, now=NOW) == issue
    agent.refresh_from_db()
    assert agent.status == AgentStatus.IDLE
    assert agent.last_heartbeat_at == NOW


def test_fetch_assignment_without_hook_returns_none(rig):
    agent = AgentFactory(town=rig.town, rig=rig)
    assert agent_fetch_assignment(agent=agent, now=NOW) is None
    agent.refresh_from_db()
    assert agent.status == AgentStatus.IDLE


@pytest.mark.broker("orm")  # reads the ORM broker's table
def test_reports_enqueue_a_tick_after_commit(issue, settings, django_capture_on_commit_callbacks):
    settings.GASTOWN_ENQUEUE_TASKS = True
    agent = hooked_polecat(issue)
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=True):
        agent_heartbeat(agent=agent, now=NOW)
        assert not OrmQ.objects.exists(), "nothing is queued before the commit"
    [queued] = OrmQ.objects.all()
    assert (queued.task["func"], queued.task["args"]) == (
        "gastown.tasks.reconcile_town_task",
        (issue.town_id,),
    )


# --- done ------------------------------------------------------------------------------


def test_done_creates_an_open_mr_into_the_default_branch(issue):
    agent = hooked_polecat(issue, status=AgentStatus.WORKING)
    mr = agent_report_done(agent=agent, bead=issue, branch="polecat/fix", pr_url=PR, now=NOW)
    assert mr.bead.type == BeadType.MERGE_REQUEST
    assert mr.bead.status == BeadStatus.OPEN
    assert mr.bead.rig == issue.rig
    assert mr.source == issue
    assert (mr.branch, mr.target_branch) == ("polecat/fix", "trunk")
    assert (mr.pr_repo, mr.pr_number) == ("acme/web", 7)
    issue.refresh_from_db()
    agent.refresh_from_db()
    assert issue.status == BeadStatus.IN_REVIEW
    assert issue.assignee == agent
    assert agent.hooked_bead is None
    assert agent.status == AgentStatus.IDLE
    assert BeadEvent.objects.filter(
        bead=issue, to_status=BeadStatus.IN_REVIEW, actor=f"agent:{agent.name}"
    ).exists()


def test_done_in_a_review_then_land_convoy_targets_the_feature_branch(rig):
    convoy = ConvoyFactory(
        town=rig.town, rig=rig, merge_mode=MergeMode.REVIEW_THEN_LAND, feature_branch="convoy/x"
    )
    bead = BeadFactory(town=rig.town, rig=rig, convoy=convoy, status=BeadStatus.IN_PROGRESS)
    agent = hooked_polecat(bead)
    mr = agent_report_done(agent=agent, bead=bead, branch="polecat/a", now=NOW)
    assert mr.target_branch == "convoy/x"
    assert mr.pr_url == ""


def test_done_in_a_review_and_merge_convoy_targets_the_default_branch(rig):
    convoy = ConvoyFactory(town=rig.town, rig=rig, merge_mode=MergeMode.REVIEW_AND_MERGE)
    bead = BeadFactory(town=rig.town, rig=rig, convoy=convoy, status=BeadStatus.IN_PROGRESS)
    agent = hooked_polecat(bead)
    mr = agent_report_done(agent=agent, bead=bead, branch="polecat/a", now=NOW)
    assert mr.target_branch == "trunk"


def test_done_for_a_rework_bead_closes_it_and_makes_the_mr_due(rig):
    source = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_REVIEW)
    mr = MergeRequestFactory(
        bead__town=rig.town, bead__rig=rig, source=source, pr_url=PR, branch="polecat/a"
    )
    rework = BeadFactory(
        town=rig.town,
        rig=rig,
        status=BeadStatus.IN_PROGRESS,
        labels=["rework"],
        metadata={"merge_request_id": mr.pk},
    )
    agent = hooked_polecat(rework)
    result = agent_report_done(agent=agent, bead=rework, branch="polecat/a", now=NOW)
    assert result.pk == mr.pk
    assert MergeRequest.objects.count() == 1
    rework.refresh_from_db()
    mr.refresh_from_db()
    assert rework.status == BeadStatus.CLOSED
    assert mr.check_requested_at == NOW
    note = BeadEvent.objects.filter(bead_ref=mr.bead_id, data__has_key="rework_bead_id").get()
    assert note.note == f"Rework bd-{rework.pk} pushed; the PR is due for a check."
    agent.refresh_from_db()
    assert agent.hooked_bead is None


@pytest.mark.parametrize("bad", ["https://github.com/acme/web/issues/7", "not a url"])
def test_done_with_a_malformed_pr_url_is_refused_and_writes_nothing(issue, bad):
    agent = hooked_polecat(issue, status=AgentStatus.WORKING)
    events = BeadEvent.objects.count()
    with pytest.raises(ReportRefused) as exc:
        agent_report_done(agent=agent, bead=issue, branch="b", pr_url=bad, now=NOW)
    assert exc.value.field == "pr_url"
    assert MergeRequest.objects.count() == 0
    assert BeadEvent.objects.count() == events
    issue.refresh_from_db()
    agent.refresh_from_db()
    assert issue.status == BeadStatus.IN_PROGRESS
    assert agent.hooked_bead == issue


@pytest.mark.parametrize(
    "foreign",
    ["https://github.com/other-town/web/pull/7", "https://github.com/acme/website/pull/7"],
)
def test_done_with_a_pr_of_another_repository_is_refused_and_writes_nothing(issue, foreign):
    agent = hooked_polecat(issue, status=AgentStatus.WORKING)
    events = BeadEvent.objects.count()
    with pytest.raises(ReportInvalid) as exc:
        agent_report_done(agent=agent, bead=issue, branch="b", pr_url=foreign, now=NOW)
    assert exc.value.field == "pr_url"
    assert "acme/web" in exc.value.message
    assert MergeRequest.objects.count() == 0
    assert BeadEvent.objects.count() == events
    issue.refresh_from_db()
    agent.refresh_from_db()
    assert issue.status == BeadStatus.IN_PROGRESS
    assert agent.hooked_bead == issue


def test_done_accepts_the_rigs_repository_in_any_case(issue):
    agent = hooked_polecat(issue)
    mr = agent_report_done(
        agent=agent, bead=issue, branch="b", pr_url="https://github.com/ACME/Web/pull/7", now=NOW
    )
    assert mr.pr_number == 7


def test_rework_done_with_a_pr_of_another_repository_is_refused(rig):
    source = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_REVIEW)
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, source=source, pr_url="")
    rework = BeadFactory(
        town=rig.town,
        rig=rig,
        status=BeadStatus.IN_PROGRESS,
        labels=["rework"],
        metadata={"merge_request_id": mr.pk},
    )
    agent = hooked_polecat(rework)
    with pytest.raises(ReportInvalid) as exc:
        agent_report_done(
            agent=agent,
            bead=rework,
            branch=mr.branch,
            pr_url="https://github.com/evil/web/pull/1",
            now=NOW,
        )
    assert exc.value.field == "pr_url"
    rework.refresh_from_db()
    mr.refresh_from_db()
    assert rework.status == BeadStatus.IN_PROGRESS
    assert mr.pr_url == ""


@pytest.mark.parametrize(
    "branch",
    [
        "has space",
        "a..b",
        "-rf",
        "feature/",
        "feature.lock",
        "tab\there",
        "del\x7f",
        "a:b",
        "a~1",
        "a^",
        "what?",
        "star*",
        "br[ack",
        "back\\slash",
        "a//b",
        "/lead",
        "dot.",
        "x/.hidden",
        "a@{1}",
        "@",
        "x" * 201,
    ],
)
def test_done_with_a_branch_that_is_not_a_git_ref_name_is_refused(issue, branch):
    agent = hooked_polecat(issue)
    with pytest.raises(ReportInvalid) as exc:
        agent_report_done(agent=agent, bead=issue, branch=branch, now=NOW)
    assert exc.value.field == "branch"
    assert MergeRequest.objects.count() == 0
    issue.refresh_from_db()
    assert issue.status == BeadStatus.IN_PROGRESS


@pytest.mark.parametrize("branch", ["polecat/12-fix-login", "feature/ä-ü", "v1.2_rc-3", "a.b/c"])
def test_done_accepts_ordinary_branch_names(issue, branch):
    agent = hooked_polecat(issue)
    assert agent_report_done(agent=agent, bead=issue, branch=branch, now=NOW).branch == branch


def test_done_for_a_bead_hooked_to_another_agent_is_refused(issue):
    hooked_polecat(issue)
    other = AgentFactory(town=issue.town, rig=issue.rig)
    with pytest.raises(ReportRefused, match="not assigned"):
        agent_report_done(agent=other, bead=issue, branch="b", now=NOW)
    assert MergeRequest.objects.count() == 0


def test_done_for_a_terminal_bead_is_refused(rig):
    bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.CLOSED)
    agent = hooked_polecat(bead)
    with pytest.raises(ReportRefused, match="terminal"):
        agent_report_done(agent=agent, bead=bead, branch="b", now=NOW)
    assert MergeRequest.objects.count() == 0


def test_done_without_a_branch_is_refused(issue):
    agent = hooked_polecat(issue)
    with pytest.raises(ReportRefused) as exc:
        agent_report_done(agent=agent, bead=issue, branch=" ", now=NOW)
    assert exc.value.field == "branch"


# --- failure ---------------------------------------------------------------------------


def test_failure_reopens_the_issue_with_the_message_kept(issue):
    agent = hooked_polecat(issue, status=AgentStatus.WORKING)
    agent_report_failure(agent=agent, bead=issue, message="tests would not build", now=NOW)
    issue.refresh_from_db()
    agent.refresh_from_db()
    assert issue.status == BeadStatus.OPEN
    assert issue.assignee is None
    assert issue.dispatch_attempts == 1
    assert issue.metadata["last_failure"]["message"] == "tests would not build"
    assert BeadEvent.objects.filter(bead=issue, note__contains="tests would not build").exists()
    assert agent.hooked_bead is None
    assert agent.status == AgentStatus.IDLE


def test_failure_past_the_effective_max_attempts_fails_the_issue(issue):
    issue.rig.max_dispatch_attempts = 2
    issue.rig.save()
    Bead.objects.filter(pk=issue.pk).update(dispatch_attempts=2)
    issue.refresh_from_db()
    agent = hooked_polecat(issue)
    agent_report_failure(agent=agent, bead=issue, message="no luck", now=NOW)
    issue.refresh_from_db()
    assert issue.status == BeadStatus.FAILED
    assert issue.failure_code == "dispatch_exhausted"
    assert "no luck" in issue.failure_message


def test_failure_of_an_mr_without_a_pr_fails_it(rig):
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url="")
    Bead.objects.filter(pk=mr.bead_id).update(status=BeadStatus.IN_PROGRESS)
    MergeRequest.objects.filter(pk=mr.pk).update(state="in_progress")
    mr.bead.refresh_from_db()
    refinery = AgentFactory(town=rig.town, rig=rig, role=AgentRole.REFINERY, hooked_bead=mr.bead)
    agent_report_failure(agent=refinery, bead=mr.bead, message="could not open PR", now=NOW)
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.bead.failure_code == "agent_failed"


def test_failure_of_an_mr_with_a_pr_never_fails_it(rig):
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    Bead.objects.filter(pk=mr.bead_id).update(status=BeadStatus.IN_PROGRESS)
    MergeRequest.objects.filter(pk=mr.pk).update(state="in_progress")
    mr.bead.refresh_from_db()
    refinery = AgentFactory(town=rig.town, rig=rig, role=AgentRole.REFINERY, hooked_bead=mr.bead)
    agent_report_failure(agent=refinery, bead=mr.bead, message="crashed", now=NOW)
    mr.bead.refresh_from_db()
    refinery.refresh_from_db()
    assert mr.bead.status == BeadStatus.OPEN
    assert refinery.hooked_bead is None


def test_failure_for_a_bead_not_hooked_is_refused(issue):
    agent = AgentFactory(town=issue.town, rig=issue.rig)
    with pytest.raises(ReportRefused):
        agent_report_failure(agent=agent, bead=issue, message="x", now=NOW)
    issue.refresh_from_db()
    assert issue.status == BeadStatus.IN_PROGRESS
    assert "last_failure" not in issue.metadata


# --- review ----------------------------------------------------------------------------


@pytest.fixture
def reviewed(rig):
    source = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_REVIEW)
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, source=source, pr_url=PR)
    Bead.objects.filter(pk=mr.bead_id).update(status=BeadStatus.IN_PROGRESS)
    MergeRequest.objects.filter(pk=mr.pk).update(state="in_progress")
    mr.bead.refresh_from_db()
    refinery = AgentFactory(
        town=rig.town,
        rig=rig,
        role=AgentRole.REFINERY,
        hooked_bead=mr.bead,
        status=AgentStatus.WORKING,
    )
    return mr, refinery


def test_review_passed_records_it_and_unhooks_the_refinery(reviewed):
    mr, refinery = reviewed
    refinery_report_review(agent=refinery, merge_request=mr, passed=True, now=NOW)
    mr.refresh_from_db()
    refinery.refresh_from_db()
    assert mr.review_status == ReviewStatus.PASSED
    assert mr.reviewed_at == NOW
    assert mr.check_requested_at == NOW, "the PR is checked at once: it may merge now"
    assert refinery.hooked_bead is None
    assert refinery.status == AgentStatus.IDLE
    assert not Bead.objects.filter(metadata__merge_request_id=mr.pk).exists()


def test_review_with_changes_requested_creates_one_rework_bead(reviewed):
    mr, refinery = reviewed
    refinery_report_review(
        agent=refinery, merge_request=mr, passed=False, summary="add tests", now=NOW
    )
    mr.refresh_from_db()
    assert mr.review_status == ReviewStatus.CHANGES_REQUESTED
    assert mr.last_rework_cause == f"refinery:{NOW.isoformat()}"
    rework = Bead.objects.get(metadata__merge_request_id=mr.pk)
    assert "rework" in rework.labels
    assert rework.parent == mr.source
    assert "add tests" in rework.title
    assert BeadDependency.objects.filter(bead=mr.bead, depends_on=rework).exists()


def test_review_from_a_polecat_is_refused(reviewed):
    mr, _ = reviewed
    polecat = AgentFactory(town=mr.bead.town, rig=mr.bead.rig)
    with pytest.raises(ReportRefused, match="only a refinery"):
        refinery_report_review(agent=polecat, merge_request=mr, passed=True, now=NOW)


def test_review_of_a_terminal_mr_is_refused(reviewed):
    mr, refinery = reviewed
    Bead.objects.filter(pk=mr.bead_id).update(status=BeadStatus.CLOSED)
    MergeRequest.objects.filter(pk=mr.pk).update(state="merged")
    mr.bead.refresh_from_db()
    with pytest.raises(ReportRefused, match="is closed"):
        refinery_report_review(agent=refinery, merge_request=mr, passed=True, now=NOW)
    mr.refresh_from_db()
    assert mr.review_status == ReviewStatus.PENDING


def test_review_by_another_rigs_refinery_is_refused(reviewed):
    mr, _ = reviewed
    other = AgentFactory(
        town=mr.bead.town,
        rig=RigFactory(town=mr.bead.town),
        role=AgentRole.REFINERY,
    )
    with pytest.raises(ReportRefused):
        refinery_report_review(agent=other, merge_request=mr, passed=True, now=NOW)
