"""The write guard itself: a write from outside the entity's services is caught."""

import pytest

from tests import write_guard
from tests.factories import BeadFactory, ConvoyFactory

pytestmark = pytest.mark.django_db


def _run_as(module: str, code: str, **names: object) -> None:
    exec(code, {"__name__": module, **names})


def test_a_view_updating_a_convoy_is_caught():
    convoy = ConvoyFactory()
    _run_as(
        "gastown.dashboard.views", "type(c).objects.filter(pk=c.pk).update(title='x')", c=convoy
    )
    found = list(write_guard._violations)
    write_guard._violations.clear()
    assert found and found[0].startswith("gastown.dashboard.views:1 updates gastown.Convoy")


def test_saving_a_bead_from_the_reconciler_is_caught_and_services_are_not():
    bead = BeadFactory()
    _run_as("beads.services", "b.title = 'ok'; b.save()", b=bead)
    assert write_guard._violations == []
    _run_as("gastown.reconciler.apply", "b.title = 'no'; b.save()", b=bead)
    found = list(write_guard._violations)
    write_guard._violations.clear()
    assert found and "saves beads.Bead" in found[0]


def test_the_feedback_check_may_store_a_snapshot_but_never_a_state():
    from tests.factories import MergeRequestFactory

    mr = MergeRequestFactory()
    code = "type(m).objects.filter(pk=m.pk).update({})"
    _run_as("gastown.feedback.checks", code.format("blocker='ready'"), m=mr)
    assert write_guard._violations == []
    _run_as("gastown.feedback.checks", code.format("state='merged'"), m=mr)
    found = list(write_guard._violations)
    write_guard._violations.clear()
    assert found and found[0].endswith("beads.MergeRequest.state (not its to write)")
    _run_as("gastown.webhooks", code.format("blocker='ready'"), m=mr)
    found = list(write_guard._violations)
    write_guard._violations.clear()
    assert found and "only beads.services, beads.merge_requests, gastown.feedback" in found[0]
