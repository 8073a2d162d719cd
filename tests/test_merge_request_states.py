"""The merge request's state machine (beads/merge_requests.py): every (state, transition)
pair, the guards, and the buttons offered from the same table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.forms.models import model_to_dict

from beads.audit import Actor
from beads.merge_requests import (
    TRANSITIONS,
    MergeRequestTransitionRefused,
    merge_request_allowed_transitions,
    merge_request_transition,
)
from beads.models import (
    BEAD_STATUS_FOR_MR_STATE,
    Bead,
    BeadEvent,
    BeadStatus,
    Blocker,
    MergeRequest,
    MergeRequestState,
)
from beads.services import bead_set_status
from gastown.services.overrides import OVERRIDES, OverrideRefused, override_run
from tests.factories import ConvoyFactory, MergeRequestFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PR = "https://github.com/acme/web/pull/7"
ACTOR = Actor("user:test")
_BEAD_STATUS = {state: BEAD_STATUS_FOR_MR_STATE[state] for state in MergeRequestState}


def mr_in(state: str, **kwargs: Any) -> MergeRequest:
    """An MR in `state` whose guards all pass: a ready PR whose review passed, held by a
    suppression when failed (so re-check applies)."""
    fields = dict(
        bead__status=_BEAD_STATUS[MergeRequestState(state)],
        bead__rig__repo="acme/web",
        pr_url=PR,
        blocker=Blocker.READY,
        review_status="passed",
    )
    mr = MergeRequestFactory(**{**fields, **kwargs})
    assert mr.state == state
    if state == MergeRequestState.FAILED:
        ConvoyFactory(town=mr.bead.town, respawn_suppressed_since=NOW, suppressed_landing_mr=mr)
    return mr


def db_state(mr: MergeRequest) -> tuple[dict[str, Any], dict[str, Any], int]:
    fresh = MergeRequest.objects.get(pk=mr.pk)
    bead = Bead.objects.get(pk=mr.bead_id)
    return model_to_dict(fresh), model_to_dict(bead), BeadEvent.objects.count()


#: What a transition's guard needs besides mr_in's defaults.
GUARD_PASSES = {"clear_awaiting": {"blocker": Blocker.HUMAN_REVIEW}}
PAIRS = [(state, name) for state in MergeRequestState.values for name in TRANSITIONS]


@pytest.mark.parametrize(("state", "transition"), PAIRS)
def test_every_state_and_transition(state, transition):
    spec = TRANSITIONS[transition]
    mr = mr_in(state, **GUARD_PASSES.get(transition, {}))
    before = db_state(mr)
    if state in spec.sources:
        merge_request_transition(merge_request=mr, transition=transition, actor=ACTOR, now=NOW)
        target = spec.target or state
        fresh = MergeRequest.objects.select_related("bead").get(pk=mr.pk)
        assert (fresh.state, mr.state) == (target, target)
        assert fresh.bead.status == _BEAD_STATUS[MergeRequestState(target)]
        if spec.target is None or spec.target == state:
            assert db_state(mr) == before, "a transition that keeps the state writes nothing"
        else:
            event = BeadEvent.objects.get(bead=mr.bead, kind="status")
            assert (event.from_status, event.to_status) == (
                _BEAD_STATUS[MergeRequestState(state)],
                fresh.bead.status,
            )
    else:
        with pytest.raises(MergeRequestTransitionRefused) as refused:
            merge_request_transition(merge_request=mr, transition=transition, actor=ACTOR, now=NOW)
        assert state in refused.value.message or "terminal" in refused.value.message
        assert db_state(mr) == before


@pytest.mark.parametrize(
    ("transition", "fields", "says"),
    [
        ("merge_now", {"review_status": "pending"}, "refinery has not passed"),
        ("merge_now", {"blocker": Blocker.HUMAN_REVIEW}, "waiting on a human"),
        ("merge_now", {"blocker": Blocker.CHECKS_PENDING}, "Checks pending"),
        ("merge_now", {"pr_url": ""}, "no pull request"),
        ("recheck", {"pr_url": ""}, "no pull request"),
        ("clear_awaiting", {}, "not awaiting approval"),
        ("redispatch", {"blocker": Blocker.HUMAN_REVIEW}, "waiting on a human"),
    ],
)
def test_a_guard_refuses_with_its_reason_and_changes_nothing(transition, fields, says):
    mr = mr_in(MergeRequestState.IN_PROGRESS, **fields)
    before = db_state(mr)
    assert transition not in merge_request_allowed_transitions(merge_request=mr)
    with pytest.raises(MergeRequestTransitionRefused, match=says):
        merge_request_transition(merge_request=mr, transition=transition, actor=ACTOR, now=NOW)
    assert db_state(mr) == before


def test_a_failed_mr_no_suppression_holds_is_not_rechecked():
    mr = MergeRequestFactory(bead__status=BeadStatus.FAILED, pr_url=PR)
    with pytest.raises(MergeRequestTransitionRefused, match="no longer watched"):
        merge_request_transition(merge_request=mr, transition="recheck", actor=ACTOR)


def test_a_stale_copy_is_refused_when_the_row_moved_meanwhile():
    mr = mr_in(MergeRequestState.IN_PROGRESS)
    stale = MergeRequest.objects.select_related("bead").get(pk=mr.pk)
    merge_request_transition(merge_request=mr, transition="fail", actor=ACTOR, now=NOW)
    before = db_state(mr)
    with pytest.raises(MergeRequestTransitionRefused, match="meanwhile"):
        merge_request_transition(merge_request=stale, transition="merge", actor=ACTOR, now=NOW)
    assert db_state(mr) == before


def test_the_mr_bead_status_only_moves_with_its_merge_request():
    mr = mr_in(MergeRequestState.OPEN)
    with pytest.raises(ValueError, match="merge_request_transition"):
        bead_set_status(bead=mr.bead, status=BeadStatus.FAILED, actor=ACTOR)
    assert Bead.objects.get(pk=mr.bead_id).status == BeadStatus.OPEN


# The buttons: offered exactly when the service accepts them ------------------------------

MR_OVERRIDES = [o for o in OVERRIDES.values() if o.target == "merge_request"]
_VARIANTS = [
    {},
    {"review_status": "pending"},
    {"blocker": Blocker.HUMAN_REVIEW},
    {"blocker": Blocker.CHECKS_FAILING},
    {"pr_url": "", "blocker": ""},
]


@pytest.mark.parametrize("state", MergeRequestState.values)
@pytest.mark.parametrize("variant", range(len(_VARIANTS)))
@pytest.mark.parametrize("override", [o.name for o in MR_OVERRIDES if o.name != "fake_pr_approve"])
def test_a_merge_request_button_is_offered_exactly_when_its_service_accepts_it(
    state, variant, override
):
    chosen = OVERRIDES[override]
    mr = mr_in(state, **_VARIANTS[variant])
    target = MergeRequest.objects.select_related("bead", "bead__town", "bead__rig").get(pk=mr.pk)
    offered = chosen.available(target)
    try:
        override_run(override=chosen, target=target, user=UserFactory(), reason="test", now=NOW)
    except OverrideRefused:
        accepted = False
    else:
        accepted = True
    assert offered == accepted


def test_merge_now_is_not_offered_before_the_review_passed():
    mr = mr_in(MergeRequestState.IN_PROGRESS, review_status="pending")
    assert not OVERRIDES["merge_request_merge_now"].available(mr)
    assert OVERRIDES["merge_request_merge_now"].available(mr_in("in_progress"))


@pytest.mark.parametrize("blocker", [Blocker.HUMAN_REVIEW, Blocker.READY])
def test_redispatch_is_not_offered_on_a_parked_mr(blocker):
    mr = mr_in(MergeRequestState.IN_PROGRESS, blocker=blocker)
    bead = Bead.objects.get(pk=mr.bead_id)
    offered = OVERRIDES["bead_redispatch"].available(bead)
    assert offered is (blocker != Blocker.HUMAN_REVIEW)
    if not offered:
        with pytest.raises(OverrideRefused, match="waiting on a human"):
            override_run(
                override=OVERRIDES["bead_redispatch"], target=bead, user=UserFactory(), now=NOW
            )
