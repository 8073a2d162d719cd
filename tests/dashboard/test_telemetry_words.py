"""Telemetry events as the timelines word them (gastown.dashboard.telemetry_words)."""

import pytest

from gastown.dashboard.telemetry_words import telemetry_sentence


@pytest.mark.parametrize(
    ("name", "label", "reason", "data", "sentence"),
    [
        (
            "pr.awaiting_approval_detected",
            "REVIEW_REQUIRED",
            "BLOCKED",
            {"reviewers": ["alice", "acme/core"]},
            "Started waiting on alice, acme/core",
        ),
        # Older events name no reviewers; a row written by hand may hold anything there.
        ("pr.awaiting_approval_detected", "", "BLOCKED", {}, "Started waiting on a person"),
        (
            "pr.awaiting_approval_detected",
            "",
            "",
            {"reviewers": "alice"},
            "Started waiting on a person",
        ),
        (
            "pr.awaiting_approval_resolved",
            "APPROVED",
            "cleared_by_user",
            {},
            "Wait on a person ended: cleared by a team lead",
        ),
        (
            "reconciler.respawn_suppressed",
            "",
            "human_review",
            {"attempt": 2},
            "Landing respawn suppressed: its PR waits on a person (attempt 2 not made)",
        ),
        (
            "reconciler.respawn_suppression_ended",
            "by_user",
            "",
            {},
            "Respawn suppression ended: ended by a team lead",
        ),
        ("pr.merged", "squash", "", {}, "PR merged (squash)"),
        (
            "agent.dispatched",
            "polecat",
            "",
            {"agent": "polecat-1"},
            "Dispatched to the polecat: polecat-1",
        ),
        (
            "convoy.failed",
            "review_then_land",
            "landing_mr_exhausted",
            {},
            "Convoy failed: every landing attempt failed",
        ),
        (
            "convoy.transition",
            "ready_to_land",
            "every bead is closed",
            {},
            "Convoy now ready to land: every bead is closed",
        ),
        (
            "override.convoy_close",
            "lead",
            "wrong plan",
            {},
            "Override convoy close by lead: wrong plan",
        ),
        # Another tool's name reads as it is, with its reason; odd data is ignored.
        ("acme.custom", "x", "it happened", "not a dict", "acme.custom: it happened"),
        (
            "reconciler.respawn_suppressed",
            "",
            "",
            None,
            "Landing respawn suppressed: its PR waits on a person",
        ),
    ],
)
def test_sentences(name, label, reason, data, sentence):
    assert telemetry_sentence(name=name, label=label, reason=reason, data=data) == sentence
