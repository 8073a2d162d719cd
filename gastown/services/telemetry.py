"""Telemetry (domain.md §6): recorded at the edges of a state, never once per tick."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gastown.models import TelemetryEvent


def duration_ms(start: datetime | None, end: datetime) -> int | None:
    if start is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))


def telemetry_record(
    *,
    name: str,
    town_id: int,
    rig_id: int | None = None,
    bead_id: int | None = None,
    convoy_id: int | None = None,
    label: str = "",
    reason: str = "",
    duration_ms: int | None = None,
    value: float | None = None,
    data: dict[str, Any] | None = None,
) -> TelemetryEvent:
    return TelemetryEvent.objects.create(
        name=name,
        town_id=town_id,
        rig_id=rig_id,
        bead_id=bead_id,
        convoy_id=convoy_id,
        label=label or "",
        reason=reason or "",
        duration_ms=duration_ms,
        value=value,
        data=data or {},
    )
