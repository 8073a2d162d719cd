"""Services of a convoy's landing respawn suppression (SPEC §5 step 4) shared by the reconciler
and the team lead's overrides."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F

from beads.models import BeadStatus, Blocker, MergeRequest
from gastown.models import Convoy
from gastown.telemetry import duration_ms, telemetry_record


def convoy_suppression_end(*, convoy: Convoy, how: str, now: datetime) -> bool:
    """End the convoy's suppression; False when there is none (or another worker ended it).

    The held landing MR is failed and no longer watched once the suppression ends, so the wait
    its last snapshot shows is released with it: otherwise the next tick would read the same
    stale "open and waiting on a human" and suppress the respawn again, forever.
    """
    since = convoy.respawn_suppressed_since
    if since is None:
        return False
    held_id, pr_url = convoy.suppressed_landing_mr_id, convoy.suppressed_pr_url
    with transaction.atomic():
        changed = Convoy.objects.filter(pk=convoy.pk, respawn_suppressed_since=since).update(
            respawn_suppressed_since=None,
            suppressed_landing_mr=None,
            suppressed_pr_url="",
            suppressed_attempt=None,
            updated_at=now,
        )
        if changed != 1:
            return False
        held = MergeRequest.objects.filter(pk=held_id or 0)
        held.filter(bead__status=BeadStatus.FAILED).update(
            blocker=Blocker.NONE, waiting_since=None, updated_at=now, version=F("version") + 1
        )
        telemetry_record(
            name="reconciler.respawn_suppression_ended",
            town_id=convoy.town_id,
            rig_id=convoy.rig_id,
            convoy_id=convoy.pk,
            bead_id=held.values_list("bead_id", flat=True).first(),
            label=how,
            duration_ms=duration_ms(since, now),
            data={"landing_mr": held_id, "pr_url": pr_url},
        )
    convoy.respawn_suppressed_since = None
    convoy.suppressed_landing_mr = None
    convoy.suppressed_pr_url = ""
    convoy.suppressed_attempt = None
    return True
