"""The JSON shapes the API returns (documented in schema.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beads.models import Bead, MergeRequest
from gastown.models import Agent, Convoy


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "role": agent.role,
        "status": agent.status,
        "rig": agent.rig.name if agent.rig_id and agent.rig else None,
        "hooked_bead": agent.hooked_bead_id,
        "last_heartbeat_at": _time(agent.last_heartbeat_at),
    }


def bead_json(bead: Bead) -> dict[str, Any]:
    return {
        "id": bead.pk,
        "type": bead.type,
        "status": bead.status,
        "title": bead.title,
        "body": bead.body,
        "priority": bead.priority,
        "labels": list(bead.labels or []),
        "metadata": bead.metadata or {},
        "rig": bead.rig.name if bead.rig_id and bead.rig else None,
        "convoy": bead.convoy_id,
        "parent": bead.parent_id,
        "dispatch_attempts": bead.dispatch_attempts,
        "created_at": _time(bead.created_at),
        "updated_at": _time(bead.updated_at),
        "closed_at": _time(bead.closed_at),
        "failure_code": bead.failure_code,
        "failure_message": bead.failure_message,
    }


def merge_request_json(mr: MergeRequest) -> dict[str, Any]:
    bead = mr.bead
    return {
        "id": mr.pk,
        "bead": mr.bead_id,
        "title": bead.title,
        "status": bead.status,
        "rig": bead.rig.name if bead.rig_id and bead.rig else None,
        "source": mr.source_id,
        "landing_convoy": mr.landing_convoy_id,
        "branch": mr.branch,
        "target_branch": mr.target_branch,
        "pr_url": mr.pr_url or None,
        "pr_repo": mr.pr_repo or None,
        "pr_number": mr.pr_number,
        "blocker": mr.blocker or None,
        "awaiting_approval": mr.awaiting_approval,
        "review_decision": mr.review_decision or None,
        "requested_reviewers": list(mr.requested_reviewers or []),
        "checks_state": mr.checks_state or None,
        "waiting_since": _time(mr.waiting_since),
        "review_status": mr.review_status,
    }


def convoy_json(convoy: Convoy, beads: list[Bead]) -> dict[str, Any]:
    return {
        "id": convoy.pk,
        "title": convoy.title,
        "status": convoy.status,
        "merge_mode": convoy.merge_mode,
        "rig": convoy.rig.name if convoy.rig_id and convoy.rig else None,
        "feature_branch": convoy.feature_branch or None,
        "beads": [bead_json(b) for b in beads],
    }
