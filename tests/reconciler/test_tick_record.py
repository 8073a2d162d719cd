"""A tick's record keeps what it planned and what it applied, for the dashboard (README,
"Performance": the reconciler page shows the record instead of re-running the rules)."""

import pytest

from gastown.models import ReconcilerTick
from gastown.reconciler import actions as a
from gastown.reconciler.tick import PLAN_KEPT, TickResult
from tests.factories import BeadFactory, TownFactory

pytestmark = pytest.mark.django_db


def test_a_tick_records_what_it_planned_and_applied(tick):
    bead = BeadFactory()
    tick(bead.town)
    record = ReconcilerTick.objects.get(town=bead.town)
    assert record.planned == 1
    assert record.skipped == 0
    assert record.plan == [
        {
            "kind": "DispatchPolecat",
            "text": f"dispatch bd-{bead.pk} to a new polecat",
            "applied": True,
        }
    ]


def test_an_idle_tick_records_an_empty_plan(tick):
    town = TownFactory()
    tick(town)
    record = ReconcilerTick.objects.get(town=town)
    assert (record.planned, record.plan, record.actions) == (0, [], {})


def test_a_skipped_action_is_recorded_as_not_applied():
    town = TownFactory.build()
    done = a.CloseBead(rule="B4", bead_id=1, note="merged")
    raced = a.CloseBead(rule="B4", bead_id=2, note="merged")
    record = TickResult(town=town, planned=[done, raced], applied=[done]).plan_record()
    assert [(x["text"], x["applied"]) for x in record] == [
        (done.describe(), True),
        (raced.describe(), False),
    ]


def test_the_record_keeps_the_first_actions():
    planned = [a.CloseBead(rule="B4", bead_id=n, note="merged") for n in range(PLAN_KEPT + 5)]
    result = TickResult(town=TownFactory.build(), planned=planned, applied=planned)
    record = result.plan_record()
    assert len(record) == PLAN_KEPT
    assert record[-1]["text"] == planned[PLAN_KEPT - 1].describe()
