"""The town-event queue (SPEC §7), the dispatch port, the tick record and the commands."""

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
    assert "dispatch bead" in planned[0].describe()
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


def _queued_tasks():
    from django_q.models import OrmQ

    return [(q.task["func"], tuple(q.task["args"])) for q in OrmQ.objects.all()]


def test_active_tick_enqueues_the_next_one_once(settings):
    settings.GASTOWN_ENQUEUE_TASKS = True
    settings.GASTOWN_ACTIVE_TICK_SECONDS = 3
    from gastown.scheduling import enqueue_tick
    from gastown.tasks import reconcile_town_task

    bead = BeadFactory()
    reconcile_town_task(bead.town.pk)
    enqueue_tick(bead.town.pk, delay_seconds=3)  # asked again: not queued twice
    assert _queued_tasks() == [("gastown.tasks.reconcile_town_later_task", (bead.town.pk, 3))]


def _claim_as_a_worker():
    """What a worker's pusher does: the row stays, locked for Q_CLUSTER retry, until the task
    is acknowledged."""
    from django_q.brokers import get_broker

    return get_broker().dequeue()


@pytest.mark.parametrize(
    ("func", "args", "delay"),
    [
        ("gastown.tasks.reconcile_town_later_task", (3,), 3),  # the active-town chain
        ("gastown.tasks.reconcile_town_task", (), 0),  # a report's immediate tick
    ],
)
def test_a_running_tick_does_not_hide_the_next_one(settings, func, args, delay):
    settings.GASTOWN_ENQUEUE_TASKS = True
    from django_q.tasks import async_task

    from gastown.scheduling import enqueue_tick

    town = TownFactory()
    async_task(func, town.pk, *args)
    [_claimed] = _claim_as_a_worker()
    enqueue_tick(town.pk, delay_seconds=delay)
    assert _queued_tasks() == [(func, (town.pk, *args))] * 2


def test_a_queued_tick_is_not_queued_twice(settings):
    settings.GASTOWN_ENQUEUE_TASKS = True
    from gastown.scheduling import enqueue_tick

    town = TownFactory()
    enqueue_tick(town.pk)
    enqueue_tick(town.pk)
    assert _queued_tasks() == [("gastown.tasks.reconcile_town_task", (town.pk,))]


def test_a_claim_whose_worker_died_still_counts_as_queued(settings):
    settings.GASTOWN_ENQUEUE_TASKS = True
    from django.utils import timezone
    from django_q.models import OrmQ

    from gastown.scheduling import enqueue_tick

    town = TownFactory()
    enqueue_tick(town.pk)
    _claim_as_a_worker()
    OrmQ.objects.update(lock=timezone.now() - timedelta(seconds=1))  # retry time passed
    enqueue_tick(town.pk)
    assert len(_queued_tasks()) == 1


def test_a_delayed_tick_waits_in_the_queue_not_in_a_worker(settings, monkeypatch):
    settings.GASTOWN_ENQUEUE_TASKS = True
    import time_machine
    from django.utils import timezone
    from django_q.brokers import get_broker

    from gastown.scheduling import enqueue_tick
    from gastown.tasks import reconcile_town_later_task

    town = TownFactory()
    enqueue_tick(town.pk, delay_seconds=3)
    assert get_broker().queue_size() == 0  # not due yet: no worker takes it
    with time_machine.travel(timezone.now() + timedelta(seconds=4), tick=False):
        assert get_broker().queue_size() == 1
    monkeypatch.setattr("time.sleep", lambda seconds: pytest.fail("a worker slept"))
    reconcile_town_later_task(town.pk, 3)


def test_a_claimed_row_stays_locked_past_the_longest_tick_delay():
    """_already_queued tells a claimed row from a delayed one by how far ahead its lock is."""
    from django_q.conf import Conf

    from gastown.scheduling import MAX_TICK_DELAY_SECONDS

    assert Conf.RETRY - Conf.TIMEOUT > MAX_TICK_DELAY_SECONDS


def test_idle_tick_enqueues_nothing(settings):
    settings.GASTOWN_ENQUEUE_TASKS = True
    from gastown.tasks import reconcile_town_task

    town = TownFactory()
    reconcile_town_task(town.pk)
    assert _queued_tasks() == []


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
