"""Merge-request outcomes shared by the feedback check, auto-merge, overrides and the admin:
telemetry at the edges of a wait, an MR closed because its PR merged, an MR failed (by the
error policy or a team lead) with its wait ended once (docs/domain.md §4, §6)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction

from beads.audit import Actor
from beads.merge_requests import (
    MergeRequestTransitionRefused,
    merge_request_transition,
    merge_request_write,
)
from beads.models import BeadStatus, MergeRequest
from beads.services import StaleBeadError, TerminalBeadError, bead_set_status
from gastown.models import TelemetryEvent
from gastown.services.telemetry import duration_ms

log = logging.getLogger(__name__)


def mr_convoy_id(mr: MergeRequest) -> int | None:
    return mr.landing_convoy_id or mr.bead.convoy_id


def telemetry_event(mr: MergeRequest, name: str, **fields: Any) -> TelemetryEvent:
    """An unsaved TelemetryEvent about an MR (saved in bulk by the caller)."""
    fields.setdefault("label", "")
    fields.setdefault("reason", "")
    fields["label"] = (fields["label"] or "")[:100]
    fields["reason"] = fields["reason"] or ""
    return TelemetryEvent(
        name=name,
        town_id=mr.bead.town_id,
        rig_id=mr.bead.rig_id,
        bead_id=mr.bead_id,
        convoy_id=mr_convoy_id(mr),
        **fields,
    )


def _reviewers(names: object) -> list[str]:
    return [n for n in names if isinstance(n, str) and n] if isinstance(names, list) else []


def wait_began_event(mr: MergeRequest, *, now: datetime) -> TelemetryEvent:
    """`data["reviewers"]`: whom the PR waits on, as its snapshot names them (empty when
    it names nobody: a rule wants "someone"); the Telemetry page charts waits per reviewer."""
    return telemetry_event(
        mr,
        "pr.awaiting_approval_detected",
        label=mr.review_decision,
        reason=mr.merge_state_status,
        duration_ms=duration_ms(mr.bead.created_at, now),
        data={"pr_url": mr.pr_url, "reviewers": _reviewers(mr.requested_reviewers)},
    )


def wait_ended_event(
    mr: MergeRequest,
    *,
    how: str,
    started_at: datetime | None,
    now: datetime,
    reviewers: list[str] | None = None,
) -> TelemetryEvent:
    """`reviewers`: whom the wait was on, when `mr` already holds a newer snapshot (an
    approval takes the reviewer off GitHub's list); else the MR's requested reviewers."""
    return telemetry_event(
        mr,
        "pr.awaiting_approval_resolved",
        label=mr.review_decision,
        reason=how,
        duration_ms=duration_ms(started_at, now),
        data={
            "pr_url": mr.pr_url,
            "reviewers": _reviewers(mr.requested_reviewers if reviewers is None else reviewers),
        },
    )


def mr_close_merged(
    mr: MergeRequest, *, now: datetime, merge_commit_sha: str = "", note: str = ""
) -> bool:
    """The PR merged: the MR bead closes, and so does the issue it lands (if not terminal).
    A landing MR's convoy is the reconciler's business. False if another worker won."""
    actor = Actor.reconciler()
    with transaction.atomic():
        try:
            merge_request_transition(
                merge_request=mr,
                transition="merge",
                actor=actor,
                note=note or f"{mr.pr_name} merged.",
                now=now,
            )
        except MergeRequestTransitionRefused as error:
            log.info("MR %s not closed: %s", mr.pk, error)
            return False
        fields: dict[str, Any] = {"merged_at": now}
        if merge_commit_sha:
            fields["merge_commit_sha"] = merge_commit_sha[:64]
        merge_request_write(merge_request=mr, now=now, new_version=False, **fields)
        source = mr.source
        if source is not None and not source.is_terminal:
            try:
                bead_set_status(
                    bead=source,
                    status=BeadStatus.CLOSED,
                    actor=actor,
                    note=f"Its MR {mr.bead.ref} merged ({mr.pr_name}).",
                    now=now,
                )
            except (TerminalBeadError, StaleBeadError) as error:
                log.info("source bead of MR %s not closed: %s", mr.pk, error)
    return True


def mr_fail(
    mr: MergeRequest,
    *,
    code: str,
    message: str,
    now: datetime,
    telemetry: list[TelemetryEvent] | None = None,
    actor: Actor | None = None,
) -> bool:
    """Fail the MR bead (audited as `actor`, the reconciler by default); a wait in progress
    ends with reason mr_failed. False if the bead was already terminal or moved by another
    worker."""
    with transaction.atomic():
        try:
            merge_request_transition(
                merge_request=mr,
                transition="fail",
                actor=actor or Actor.reconciler(),
                failure_code=code,
                failure_message=message,
                now=now,
            )
        except MergeRequestTransitionRefused as error:
            log.info("MR %s not failed: %s", mr.pk, error)
            return False
        events = list(telemetry or [])
        if mr.waiting_since is not None:
            events.append(
                wait_ended_event(mr, how="mr_failed", started_at=mr.waiting_since, now=now)
            )
        TelemetryEvent.objects.bulk_create(events)
    return True
