"""A telemetry event as one sentence for the timelines (docs/domain.md §6 says what each
name's label and reason hold). The raw name, label and reason stay in the event's details.

The one place that words telemetry: the bead page's and the convoy page's timelines both call
`telemetry_sentence`. A name this module does not know (another tool's) reads as its name,
with its reason when there is one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from beads.sentences import code_words as _words
from beads.sentences import failure_words

#: How a wait on a reviewer ended (`pr.awaiting_approval_resolved`'s reason), and how a
#: suppression ended (`reconciler.respawn_suppression_ended`'s label).
_ENDED: dict[str, str] = {
    "approved": "approved",
    "changes_requested": "a reviewer asked for changes",
    "merged": "the PR merged",
    "closed": "the PR closed",
    "draft": "the PR became a draft",
    "conflict": "the PR has conflicts",
    "cleared_by_user": "cleared by a team lead",
    "mr_failed": "the MR failed",
    "by_user": "ended by a team lead",
}


def _ended(code: str) -> str:
    return _ENDED.get(code) or _words(code)


def _with(text: str, detail: str) -> str:
    return f"{text}: {detail}" if detail else text


def _waiting(label: str, reason: str, data: dict[str, Any]) -> str:
    listed = data.get("reviewers")
    reviewers = [r for r in listed if isinstance(r, str) and r] if isinstance(listed, list) else []
    return (
        f"Started waiting on {', '.join(reviewers)}" if reviewers else "Started waiting on a person"
    )


def _suppressed(label: str, reason: str, data: dict[str, Any]) -> str:
    attempt = data.get("attempt")
    not_made = f" (attempt {attempt} not made)" if isinstance(attempt, int) else ""
    return f"Landing respawn suppressed: its PR waits on a person{not_made}"


_SENTENCES: dict[str, Callable[[str, str, dict[str, Any]], str]] = {
    "pr.awaiting_approval_detected": _waiting,
    "pr.awaiting_approval_resolved": lambda label, reason, data: _with(
        "Wait on a person ended", _ended(reason) if reason else ""
    ),
    "reconciler.respawn_suppressed": _suppressed,
    "reconciler.respawn_suppression_ended": lambda label, reason, data: _with(
        "Respawn suppression ended", _ended(label) if label else ""
    ),
    "pr.merged": lambda label, reason, data: (
        f"PR merged ({_words(label)})" if label else "PR merged"
    ),
    "pr.merge_refused": lambda label, reason, data: _with("GitHub refused the merge", reason),
    "pr.poll_failed": lambda label, reason, data: _with("Reading the PR failed", reason),
    "agent.dispatched": lambda label, reason, data: _with(
        f"Dispatched to the {_words(label)}" if label else "Dispatched",
        str(data.get("agent") or ""),
    ),
    "agent.dispatch_failed": lambda label, reason, data: _with("Dispatch failed", reason),
    "convoy.landed": lambda label, reason, data: _with("Convoy landed", reason),
    "convoy.failed": lambda label, reason, data: _with(
        "Convoy failed", failure_words(reason) if reason else ""
    ),
    "convoy.transition": lambda label, reason, data: _with(
        f"Convoy now {_words(label)}" if label else "Convoy status changed", reason
    ),
}


def telemetry_sentence(*, name: str, label: str, reason: str, data: object) -> str:
    """ "Started waiting on alice", "PR merged (squash)", "Convoy now landing: landing MR
    created (attempt 1)"."""
    words = _SENTENCES.get(name)
    if words is None:
        if name.startswith("override."):  # label: the user; reason: theirs
            by = f" by {label}" if label else ""
            return _with(f"Override {_words(name.removeprefix('override.'))}{by}", reason)
        return _with(name, reason)
    return words(label, reason, data if isinstance(data, dict) else {})
