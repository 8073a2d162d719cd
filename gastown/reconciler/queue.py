"""The town-event queue (SPEC §7): each event is applied and marked processed in the same
transaction, so none is lost or applied twice; an event whose object is gone is processed with
a warning; an event that keeps raising is retried a bounded number of times, then parked."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from beads.audit import Actor
from beads.merge_requests import merge_request_transition
from beads.models import TERMINAL_STATUSES, BeadStatus, MergeRequest
from beads.services import bead_set_status
from gastown.models import Town, TownEvent, TownEventKind

log = logging.getLogger(__name__)
DRAIN_LIMIT = 500


class ObjectGone(Exception):
    """The event names a bead, agent or MR that no longer exists."""


def _mr_from(event: TownEvent) -> MergeRequest | None:
    mr_id = event.payload.get("merge_request_id")
    if mr_id is not None:
        mr = MergeRequest.objects.filter(pk=mr_id, bead__town_id=event.town_id).first()
        if mr is None:
            raise ObjectGone(f"merge request {mr_id} no longer exists")
        return mr
    if event.bead_id is not None:
        return MergeRequest.objects.filter(bead_id=event.bead_id).first()
    return None


def apply_event(event: TownEvent, now: datetime) -> None:
    if event.kind in (
        TownEventKind.WEBHOOK_RECEIVED,
        TownEventKind.PR_STATE_CHANGED,
        TownEventKind.RECHECK_REQUESTED,
    ):
        mr = _mr_from(event)
        if mr is not None:
            MergeRequest.objects.filter(pk=mr.pk).update(check_requested_at=now)
    elif event.kind == TownEventKind.BEAD_CANCELLED:
        if event.bead is None:
            raise ObjectGone("the cancelled bead no longer exists")
        if event.bead.status not in TERMINAL_STATUSES:
            actor = Actor(event.payload.get("actor", "reconciler"))
            reason = event.payload.get("reason", "cancelled")
            cancelled_mr = MergeRequest.objects.filter(bead=event.bead).first()
            if cancelled_mr is not None:
                merge_request_transition(
                    merge_request=cancelled_mr,
                    transition="fail",
                    actor=actor,
                    failure_code="cancelled",
                    failure_message=reason,
                    now=now,
                )
            else:
                bead_set_status(
                    bead=event.bead,
                    status=BeadStatus.FAILED,
                    actor=actor,
                    failure_code="cancelled",
                    failure_message=reason,
                    now=now,
                )
    elif event.kind == TownEventKind.AGENT_REPORT:
        # Agent reports are applied synchronously by gastown.reports; an event of this kind
        # only wakes the town up.
        pass
    else:
        raise ValueError(f"unknown town event kind {event.kind!r}")


def drain_events(town: Town, now: datetime) -> int:
    """Apply the town's pending events in order. Call inside the tick's transaction."""
    drained = 0
    pending = list(
        TownEvent.objects.filter(town=town, processed_at__isnull=True, parked_at__isnull=True)
        .select_related("bead")
        .order_by("created_at", "pk")[:DRAIN_LIMIT]
    )
    for event in pending:
        try:
            with transaction.atomic():
                apply_event(event, now)
                TownEvent.objects.filter(pk=event.pk).update(processed_at=now, last_error="")
        except ObjectGone as gone:
            log.warning("town event %s: %s; marked processed", event.pk, gone)
            TownEvent.objects.filter(pk=event.pk).update(processed_at=now, warning=str(gone))
        except Exception as exc:
            attempts = event.attempts + 1
            parked = attempts >= TownEvent.MAX_ATTEMPTS
            log.warning(
                "town event %s failed (attempt %s%s): %s",
                event.pk,
                attempts,
                ", parked" if parked else "",
                exc,
            )
            TownEvent.objects.filter(pk=event.pk).update(
                attempts=attempts,
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
                parked_at=now if parked else None,
            )
            continue
        drained += 1
    return drained
