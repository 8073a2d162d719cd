from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from beads.audit import Actor
from beads.merge_requests import merge_request_transition
from beads.models import BeadDependency, BeadEvent, BeadStatus, Blocker, MergeRequest
from beads.services import TerminalBeadError, bead_add_dependency, bead_create, bead_set_status
from gastown.models import Convoy, MergeMode, Town
from tests.factories import (
    AgentFactory,
    BeadFactory,
    ConvoyFactory,
    MergeRequestFactory,
    RigFactory,
    TownFactory,
)

pytestmark = pytest.mark.django_db


def _raw_update(table: str, column: str, value: str, pk: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])


@pytest.mark.parametrize(
    ("table", "column", "factory"),
    [
        ("beads_bead", "status", BeadFactory),
        ("beads_bead", "type", BeadFactory),
        ("beads_bead", "priority", BeadFactory),
        ("gastown_agent", "status", AgentFactory),
        ("gastown_agent", "role", AgentFactory),
        ("gastown_convoy", "status", ConvoyFactory),
    ],
)
def test_database_rejects_unknown_choice_values(table, column, factory):
    obj = factory()
    with pytest.raises(IntegrityError), transaction.atomic():
        _raw_update(table, column, "bogus", obj.pk)


def test_review_then_land_convoy_needs_a_rig():
    town = TownFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Convoy.objects.create(town=town, title="x", merge_mode=MergeMode.REVIEW_THEN_LAND)


def test_one_refinery_per_rig():
    rig = RigFactory()
    AgentFactory(town=rig.town, rig=rig, role="refinery", name="r1")
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentFactory(town=rig.town, rig=rig, role="refinery", name="r2")


def test_a_bead_is_hooked_to_at_most_one_agent():
    bead = BeadFactory()
    AgentFactory(town=bead.town, rig=bead.rig, hooked_bead=bead)
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentFactory(town=bead.town, rig=bead.rig, hooked_bead=bead)


def test_one_active_landing_mr_per_convoy():
    convoy = ConvoyFactory()
    MergeRequestFactory(landing_convoy=convoy, bead__town=convoy.town)
    with pytest.raises(IntegrityError), transaction.atomic():
        MergeRequestFactory(landing_convoy=convoy, bead__town=convoy.town)


def test_a_failed_landing_mr_frees_the_slot_for_a_new_one():
    convoy = ConvoyFactory()
    first = MergeRequestFactory(landing_convoy=convoy, bead__town=convoy.town)
    merge_request_transition(merge_request=first, transition="fail", actor=Actor.reconciler())
    assert MergeRequest.objects.get(pk=first.pk).is_active is False
    MergeRequestFactory(landing_convoy=convoy, bead__town=convoy.town)


@pytest.mark.parametrize("blocker", [b.value for b in Blocker])
def test_awaiting_approval_is_read_from_the_blocker_alone(blocker):
    mr = MergeRequestFactory()
    MergeRequest.objects.filter(pk=mr.pk).update(blocker=blocker)
    mr.refresh_from_db()
    assert mr.awaiting_approval is (blocker == "human_review")


def test_pr_repository_and_number_are_read_from_the_url_alone():
    mr = MergeRequestFactory(pr_url="https://github.com/Acme/Web/pull/12/files")
    assert (mr.pr_repo, mr.pr_number) == ("Acme/Web", 12)
    for url in ("", "https://github.com/acme/web/issues/12"):
        MergeRequest.objects.filter(pk=mr.pk).update(pr_url=url)
        mr.refresh_from_db()
        assert (mr.pr_ref, mr.pr_repo, mr.pr_number) == (None, "", None)


def test_the_last_rework_cause_is_the_last_of_the_causes():
    mr = MergeRequestFactory(rework_causes=["conflict:a", "behind:b"])
    assert mr.last_rework_cause == "behind:b"
    assert MergeRequestFactory().last_rework_cause == ""


@pytest.mark.parametrize("terminal", [BeadStatus.CLOSED, BeadStatus.FAILED])
@pytest.mark.parametrize("target", [BeadStatus.OPEN, BeadStatus.IN_PROGRESS, BeadStatus.CLOSED])
def test_terminal_bead_never_changes_status(terminal, target):
    bead = BeadFactory()
    bead_set_status(bead=bead, status=terminal, actor=Actor.reconciler())
    if target == terminal:
        target = BeadStatus.OPEN
    with pytest.raises(TerminalBeadError, match="terminal"):
        bead_set_status(bead=bead, status=target, actor=Actor.reconciler())
    bead.refresh_from_db()
    assert bead.status == terminal


def test_stale_copy_of_a_terminal_bead_cannot_reopen_it():
    bead = BeadFactory()
    stale = type(bead).objects.get(pk=bead.pk)
    bead_set_status(bead=bead, status=BeadStatus.FAILED, actor=Actor.reconciler())
    with pytest.raises(TerminalBeadError):
        bead_set_status(bead=stale, status=BeadStatus.IN_PROGRESS, actor=Actor.reconciler())
    bead.refresh_from_db()
    assert bead.status == BeadStatus.FAILED


def test_every_status_change_is_audited_with_actor_and_note():
    town = TownFactory()
    bead = bead_create(town=town, title="Fix login", actor=Actor("user:alice"))
    bead_set_status(bead=bead, status=BeadStatus.IN_PROGRESS, actor=Actor.reconciler())
    bead_set_status(
        bead=bead,
        status=BeadStatus.FAILED,
        actor=Actor("agent:polecat-1"),
        failure_code="agent_failed",
        failure_message="tests do not compile",
    )
    events = list(BeadEvent.objects.filter(bead_ref=bead.pk).order_by("id"))
    assert [(e.kind, e.from_status, e.to_status, e.actor) for e in events] == [
        ("created", "", "open", "user:alice"),
        ("status", "open", "in_progress", "reconciler"),
        ("status", "in_progress", "failed", "agent:polecat-1"),
    ]
    assert events[-1].note == "tests do not compile"
    bead.refresh_from_db()
    assert bead.closed_at is not None
    assert bead.failure_code == "agent_failed"


def test_audit_survives_the_bead_deletion():
    bead = bead_create(town=TownFactory(), title="Doomed", actor=Actor.reconciler())
    pk = bead.pk
    bead.delete()
    event = BeadEvent.objects.get(bead_ref=pk)
    assert event.bead is None
    assert event.bead_title == "Doomed"


def test_rig_overrides_win_over_town_settings():
    town = TownFactory(auto_merge_delay_minutes=10, code_review=True, max_dispatch_attempts=5)
    rig = RigFactory(town=town, auto_merge_delay_minutes=0, code_review=False)
    effective = rig.settings
    assert effective.auto_merge_delay.total_seconds() == 0
    assert effective.code_review is False
    assert effective.max_dispatch_attempts == 5
    assert town.effective().auto_merge_delay.total_seconds() == 600


def test_reconciler_thresholds_default_to_the_spec():
    defaults = Town().effective()
    assert defaults.dispatch_backoff == (
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(minutes=2),
        timedelta(minutes=5),
        timedelta(minutes=10),
    )
    assert defaults.landing_cooldown_base == timedelta(seconds=30)
    assert defaults.landing_cooldown_max == timedelta(minutes=30)
    assert defaults.breaker_threshold == 20
    assert defaults.breaker_window == timedelta(minutes=30)


def test_town_thresholds_are_read_through_the_effective_settings():
    town = TownFactory(
        dispatch_backoff_seconds="10, 20,40",
        landing_cooldown_base_seconds=5,
        landing_cooldown_max_seconds=50,
        breaker_threshold=7,
        breaker_window_minutes=15,
    )
    effective = RigFactory(town=town).settings
    assert [d.total_seconds() for d in effective.dispatch_backoff] == [10, 20, 40]
    assert effective.landing_cooldown_base == timedelta(seconds=5)
    assert effective.landing_cooldown_max == timedelta(seconds=50)
    assert effective.breaker_threshold == 7
    assert effective.breaker_window == timedelta(minutes=15)


@pytest.mark.parametrize(
    "backoff", ["", "30,abc", "30,,60", "30,0", "-5", "30;60", "1.5", "30,86401"]
)
def test_malformed_dispatch_backoff_is_refused_naming_the_field(backoff):
    town = TownFactory.build(slug="acme", name="Acme", dispatch_backoff_seconds=backoff)
    with pytest.raises(ValidationError) as refused:
        town.full_clean()
    assert list(refused.value.message_dict) == ["dispatch_backoff_seconds"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("dispatch_backoff_seconds", ""),
        ("landing_cooldown_base_seconds", 0),
        ("landing_cooldown_max_seconds", 0),
        ("breaker_threshold", 0),
        ("breaker_window_minutes", 0),
    ],
)
def test_database_refuses_an_unusable_threshold(column, value):
    town = TownFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Town.objects.filter(pk=town.pk).update(**{column: value})


def test_town_token_is_stored_encrypted():
    town = TownFactory()
    town.set_github_token("ghp_supersecret")
    town.save()
    town.refresh_from_db()
    assert "ghp_supersecret" not in town.github_token_encrypted
    assert town.github_token() == "ghp_supersecret"


def test_town_token_may_come_from_a_named_environment_variable(monkeypatch):
    monkeypatch.setenv("ACME_GH_TOKEN", "ghp_fromenv")
    town = TownFactory(github_token_env="ACME_GH_TOKEN")
    assert town.github_token() == "ghp_fromenv"


def test_a_dependency_cycle_is_refused_at_any_length():
    a = BeadFactory()
    b = BeadFactory(town=a.town)
    c = BeadFactory(town=a.town)
    bead_add_dependency(bead=a, blocker=b)
    bead_add_dependency(bead=b, blocker=c)
    with pytest.raises(ValueError, match="cycle"):
        bead_add_dependency(bead=c, blocker=a)
    with pytest.raises(ValueError, match="itself"):
        bead_add_dependency(bead=a, blocker=a)
    assert BeadDependency.objects.count() == 2


def test_a_chain_through_a_closed_bead_is_no_cycle():
    a = BeadFactory()
    b = BeadFactory(town=a.town, status=BeadStatus.CLOSED)
    BeadDependency.objects.create(bead=a, depends_on=b, kind="blocks")
    BeadDependency.objects.create(
        bead=b, depends_on=a, kind="blocks"
    )  # b is closed: it waits for nothing
    c = BeadFactory(town=a.town)
    bead_add_dependency(bead=b, blocker=c, kind="parent-child")
    bead_add_dependency(bead=c, blocker=a)
    assert BeadDependency.objects.filter(bead=c, depends_on=a).exists()
