"""The town-event queue (domain.md §7), the dispatch port, the tick record and the commands."""

import hashlib
import hmac
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import Schedule

from beads.models import Bead, BeadStatus
from gastown.models import Agent, ReconcilerTick, TelemetryEvent
from gastown.reconciler import dry_run
from tests.factories import (
    AgentFactory,
    BeadFactory,
    RigFactory,
    TownFactory,
)

pytestmark = pytest.mark.django_db


def test_each_tick_is_recorded_with_actions_by_kind(tick):
    bead = BeadFactory()
    tick(bead.town)
    record = ReconcilerTick.objects.get()
    assert record.actions == {"DispatchPolecat": 1}
    assert record.town == bead.town


def test_dry_run_plans_without_applying(clock):
    bead = BeadFactory()
    planned = dry_run(bead.town, now=clock.now)
    assert [p.kind for p in planned] == ["DispatchPolecat"]
    assert f"dispatch bd-{bead.pk}" in planned[0].describe()
    bead.refresh_from_db()
    assert bead.status == BeadStatus.OPEN
    assert not ReconcilerTick.objects.exists()


def _steady_town(size):
    """A town where nothing is due: every issue is in progress with a live agent."""
    rig = RigFactory()
    for _ in range(size):
        agent = AgentFactory(town=rig.town, rig=rig, status="working")
        bead = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_PROGRESS)
        Agent.objects.filter(pk=agent.pk).update(hooked_bead=bead)
    return rig.town


def _count_tick_queries(town, clock, tick):
    Agent.objects.filter(town=town).update(last_heartbeat_at=clock.now)
    with CaptureQueriesContext(connection) as ctx:
        tick(town)
    return len(ctx.captured_queries)


def test_tick_query_count_does_not_grow_with_beads(tick, clock):
    small = _count_tick_queries(_steady_town(3), clock, tick)
    large = _count_tick_queries(_steady_town(60), clock, tick)
    assert small == large


def test_dispatch_sends_a_signed_notification_after_commit(tick, runtime):
    bead = BeadFactory(title="Fix login")
    tick(bead.town)
    [(headers, body)] = runtime.received
    expected = hmac.new(b"runtime-secret", body, hashlib.sha256).hexdigest()
    assert headers["X-Gastown-Signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["bead"]["id"] == bead.pk and payload["bead"]["title"] == "Fix login"
    assert TelemetryEvent.objects.filter(name="agent.dispatched").count() == 1


def test_refused_notification_is_a_failed_dispatch(tick, runtime):
    runtime.status = 503
    bead = BeadFactory()
    tick(bead.town)
    bead.refresh_from_db()
    assert bead.status == BeadStatus.OPEN
    assert bead.dispatch_attempts == 1
    assert not Agent.objects.filter(hooked_bead=bead).exists()
    failure = TelemetryEvent.objects.get(name="agent.dispatch_failed")
    assert "503" in failure.reason


def test_unreachable_runtime_is_a_failed_dispatch(tick, settings):
    settings.AGENT_RUNTIME_URL = "http://127.0.0.1:9/dispatch"
    settings.AGENT_RUNTIME_SECRET = "s"
    bead = BeadFactory()
    tick(bead.town)
    bead.refresh_from_db()
    assert bead.status == BeadStatus.OPEN
    assert TelemetryEvent.objects.filter(name="agent.dispatch_failed").count() == 1


def test_reconcile_command_prints_a_one_line_summary():
    bead = BeadFactory()
    out = StringIO()
    call_command("reconcile", "--town", bead.town.slug, stdout=out)
    assert out.getvalue().strip() == "1 town(s), applied: DispatchPolecat=1"
    assert Bead.objects.get(pk=bead.pk).status == BeadStatus.IN_PROGRESS


def test_reconcile_dry_run_changes_nothing():
    bead = BeadFactory()
    out = StringIO()
    call_command("reconcile", "--dry-run", stdout=out)
    assert "planned: DispatchPolecat=1" in out.getvalue()
    assert Bead.objects.get(pk=bead.pk).status == BeadStatus.OPEN


def test_reconcile_unknown_town_is_a_clear_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No town with slug 'nope'"):
        call_command("reconcile", "--town", "nope")


def test_sync_schedules_is_idempotent():
    out = StringIO()
    call_command("sync_schedules", stdout=out)
    call_command("sync_schedules", stdout=out)
    Schedule.objects.create(name="gastown.reconcile", func="x", schedule_type=Schedule.ONCE)
    call_command("sync_schedules", stdout=out)
    names = sorted(Schedule.objects.values_list("name", flat=True))
    assert names == ["gastown.check_prs", "gastown.reconcile"]
    assert set(Schedule.objects.values_list("minutes", flat=True)) == {1}


@pytest.fixture
def queue(settings, monkeypatch):
    """The configured broker (Q_BROKER: .ci/run runs these tests on both), empty, with
    enqueueing on. `queue.take()` does what a worker's pusher does and returns the tasks it
    got; a task it takes stays taken, as if running."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    settings.GASTOWN_ENQUEUE_TASKS = True
    # An empty ORM queue sleeps Q_CLUSTER's poll interval before it answers.
    monkeypatch.setattr("django_q.brokers.orm.sleep", lambda seconds: None)
    broker = get_broker()
    broker.purge_queue()

    class Queue:
        name = settings.Q_BROKER

        def take(self) -> list[tuple[str, tuple]]:
            taken = []
            while batch := broker.dequeue():
                for _ack_id, payload in batch:
                    task = SignedPackage.loads(payload)
                    taken.append((task["func"], tuple(task["args"])))
            return taken

    yield Queue()
    broker.purge_queue()


def _later(seconds):
    import time_machine
    from django.utils import timezone

    return time_machine.travel(timezone.now() + timedelta(seconds=seconds), tick=False)


def test_active_tick_enqueues_the_next_one_once(queue, settings):
    settings.GASTOWN_ACTIVE_TICK_SECONDS = 3
    from gastown.scheduling import enqueue_tick
    from gastown.tasks import reconcile_town_task

    bead = BeadFactory()
    reconcile_town_task(bead.town.pk)
    enqueue_tick(bead.town.pk, delay_seconds=3)  # asked again: not queued twice
    with _later(4):
        assert queue.take() == [("gastown.tasks.reconcile_town_later_task", (bead.town.pk, 3))]


@pytest.mark.parametrize(
    ("func", "args", "delay"),
    [
        ("gastown.tasks.reconcile_town_later_task", (3,), 3),  # the active-town chain
        ("gastown.tasks.reconcile_town_task", (), 0),  # a report's immediate tick
    ],
)
def test_a_running_tick_does_not_hide_the_next_one(queue, func, args, delay):
    from django_q.tasks import async_task

    from gastown.scheduling import enqueue_tick

    town = TownFactory()
    async_task(func, town.pk, *args)
    assert queue.take() == [(func, (town.pk, *args))]  # now running
    enqueue_tick(town.pk, delay_seconds=delay)
    with _later(delay + 1):
        assert queue.take() == [(func, (town.pk, *args))]


def test_a_queued_tick_is_not_queued_twice(queue):
    from gastown.scheduling import enqueue_tick

    town = TownFactory()
    enqueue_tick(town.pk)
    enqueue_tick(town.pk)
    assert queue.take() == [("gastown.tasks.reconcile_town_task", (town.pk,))]


def test_a_delayed_tick_is_not_queued_twice(queue):
    from gastown.scheduling import enqueue_tick

    town = TownFactory()
    enqueue_tick(town.pk, delay_seconds=3)
    enqueue_tick(town.pk, delay_seconds=3)
    with _later(4):
        assert queue.take() == [("gastown.tasks.reconcile_town_later_task", (town.pk, 3))]


def test_a_delayed_tick_waits_in_the_queue_not_in_a_worker(queue, monkeypatch):
    from gastown.scheduling import enqueue_tick
    from gastown.tasks import reconcile_town_later_task

    town = TownFactory()
    enqueue_tick(town.pk, delay_seconds=3)
    with _later(2):
        assert queue.take() == []  # not due yet: no worker takes it
    with _later(4):
        assert queue.take() == [("gastown.tasks.reconcile_town_later_task", (town.pk, 3))]
    monkeypatch.setattr("time.sleep", lambda seconds: pytest.fail("a worker slept"))
    reconcile_town_later_task(town.pk, 3)


def test_idle_tick_enqueues_nothing(queue):
    from gastown.tasks import reconcile_town_task

    town = TownFactory()
    reconcile_town_task(town.pk)
    assert queue.take() == []


@pytest.mark.broker("orm")
def test_a_claim_whose_worker_died_still_counts_as_queued(queue):
    from django.utils import timezone
    from django_q.models import OrmQ

    from gastown.scheduling import enqueue_tick

    town = TownFactory()
    enqueue_tick(town.pk)
    queue.take()
    OrmQ.objects.update(lock=timezone.now() - timedelta(seconds=1))  # retry time passed
    enqueue_tick(town.pk)
    assert OrmQ.objects.count() == 1


@pytest.mark.broker("orm")
def test_a_claimed_row_stays_locked_past_the_longest_tick_delay():
    """The ORM broker tells a claimed row from a delayed one by how far ahead its lock is."""
    from django_q.conf import Conf

    from gastown.scheduling import MAX_TASK_DELAY_SECONDS

    assert Conf.RETRY - Conf.TIMEOUT > MAX_TASK_DELAY_SECONDS


@pytest.mark.broker("redis")
def test_redis_delayed_tasks_are_moved_once_by_several_pushers(queue):
    """Every cluster's pusher moves due tasks before it pops: each task is moved once."""
    from django_q.brokers import get_broker

    from gastown.scheduling import enqueue_tick

    towns = [TownFactory() for _ in range(3)]
    for town in towns:
        enqueue_tick(town.pk, delay_seconds=3)
    pushers = [get_broker(), get_broker()]
    with _later(4):
        assert [pusher.release_due() for pusher in pushers] == [3, 0]
        assert sorted(queue.take()) == sorted(
            ("gastown.tasks.reconcile_town_later_task", (town.pk, 3)) for town in towns
        )


def test_gc_prunes_old_history_but_keeps_the_bead_audit(clock):
    from datetime import timedelta

    from beads.models import BeadEvent
    from gastown.models import FeedbackCheckRun, WebhookDelivery
    from gastown.reconciler.tick import prune

    bead = BeadFactory()
    BeadEvent.objects.create(
        bead=bead, bead_ref=bead.pk, bead_title="t", town=bead.town, kind="note", actor="x"
    )
    ReconcilerTick.objects.create(town=bead.town, started_at=clock.now - timedelta(days=2))
    FeedbackCheckRun.objects.create(town=bead.town, started_at=clock.now - timedelta(days=2))
    recent_check = FeedbackCheckRun.objects.create(
        town=bead.town, started_at=clock.now - timedelta(hours=23)
    )
    TelemetryEvent.objects.create(town=bead.town, name="x")
    TelemetryEvent.objects.filter(name="x").update(created_at=clock.now - timedelta(days=91))
    WebhookDelivery.objects.create(delivery_id="old", event="ping", status="ignored")
    WebhookDelivery.objects.filter(delivery_id="old").update(
        received_at=clock.now - timedelta(days=8)
    )
    WebhookDelivery.objects.create(delivery_id="fresh", event="ping", status="ignored")
    WebhookDelivery.objects.filter(delivery_id="fresh").update(
        received_at=clock.now - timedelta(days=6)
    )
    prune(clock.now)
    assert not ReconcilerTick.objects.exists()
    assert list(FeedbackCheckRun.objects.all()) == [recent_check]
    assert not TelemetryEvent.objects.filter(name="x").exists()
    assert list(WebhookDelivery.objects.values_list("delivery_id", flat=True)) == ["fresh"]
    assert BeadEvent.objects.filter(bead_ref=bead.pk).count() == 1
