"""The dispatch port: how an agent learns it has work (domain.md §3, issue 4).

Dispatching hooks the bead to the agent in the database (the reconciler does that). When
AGENT_RUNTIME_URL is set, a signed JSON notification is POSTed to the runtime after commit:
the body's HMAC-SHA256 with AGENT_RUNTIME_SECRET is sent hex-encoded in X-Gastown-Signature
as "sha256=<hex>", the same shape GitHub uses for webhooks. A refused or failed notification
is a failed dispatch: the bead goes back to `open` (its attempt stays counted) and the
circuit breaker counts it. Without a runtime the agent becomes `working` when it fetches its
assignment through the API.

Every notification carries its dispatch's key (`dispatch_id` in the body, and the
X-Gastown-Dispatch-Id header), one per bead attempt: a process that died before the
runtime's answer sends the same key again on the next tick, and the runtime acts on a key
once (docs/architecture.md, "Side effects and crashes").
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from beads.audit import Actor
from beads.models import Bead, BeadEventKind, BeadStatus
from beads.services import (
    StaleBeadError,
    TerminalBeadError,
    bead_assign,
    bead_event_record,
    bead_set_status,
)
from gastown.models import Agent, AgentStatus
from gastown.services.telemetry import telemetry_record

log = logging.getLogger(__name__)
NOTIFY_TIMEOUT_SECONDS = 5


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dispatch_payload(agent: Agent, bead: Bead, key: str = "") -> dict[str, object]:
    payload: dict[str, object] = {
        "dispatch_id": key,
        "town": agent.town.slug,
        "agent": {"name": agent.name, "role": agent.role},
        "bead": {
            "id": bead.pk,
            "type": bead.type,
            "title": bead.title,
            "body": bead.body,
            "priority": bead.priority,
            "labels": bead.labels,
        },
        "rig": {"repo": agent.rig.repo, "default_branch": agent.rig.default_branch}
        if agent.rig
        else None,
    }
    mr = getattr(bead, "merge_request", None) if bead.type == "merge_request" else None
    if mr is not None:
        payload["merge_request"] = {
            "id": mr.pk,
            "branch": mr.branch,
            "target_branch": mr.target_branch,
            "pr_url": mr.pr_url,
        }
    elif bead.convoy_id and bead.convoy and bead.convoy.feature_branch:
        payload["target_branch"] = bead.convoy.feature_branch
    return payload


def notify_runtime(agent: Agent, bead: Bead, key: str = "") -> str:
    """POST the signed notification; returns "" on success, else what went wrong."""
    body = json.dumps(dispatch_payload(agent, bead, key), sort_keys=True).encode()
    request = urllib.request.Request(
        settings.AGENT_RUNTIME_URL,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Gastown-Signature": sign(body, settings.AGENT_RUNTIME_SECRET),
            "X-Gastown-Event": "dispatch",
            "X-Gastown-Dispatch-Id": key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT_SECONDS) as response:
            if 200 <= response.status < 300:
                return ""
            return f"the runtime answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"the runtime refused the dispatch ({exc.code})"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the runtime could not be reached ({reason})"


#: Agents that run inside this process (the demo's simulated agents): called with the agent
#: and bead ids after a dispatch commits, when GASTOWN_SIMULATED_AGENTS is on. The demo app
#: registers them, so this module never imports the demo.
_local_agents: Callable[..., None] | None = None


def dispatch_register_local_agents(handler: Callable[..., None]) -> None:
    global _local_agents
    _local_agents = handler


def dispatch_notify(
    *, agent_id: int, bead_id: int, now: datetime | None = None, key: str = ""
) -> bool:
    """Run after the dispatch committed (the intent `key`). Returns whether the agent was
    told."""
    now = now or timezone.now()
    agent = Agent.objects.select_related("town", "rig").filter(pk=agent_id).first()
    bead = Bead.objects.select_related("convoy").filter(pk=bead_id).first()
    if agent is None or bead is None or agent.hooked_bead_id != bead_id:
        return False
    error = ""
    if settings.AGENT_RUNTIME_URL:
        error = notify_runtime(agent, bead, key)
    elif settings.GASTOWN_SIMULATED_AGENTS and _local_agents is not None:
        _local_agents(agent_id=agent.pk, bead_id=bead.pk)
    if error:
        dispatch_failed(agent=agent, bead=bead, reason=error, now=now)
        return False
    telemetry_record(
        name="agent.dispatched",
        town_id=agent.town_id,
        rig_id=agent.rig_id,
        bead_id=bead.pk,
        label=agent.role,
        data={"agent": agent.name, "dispatch_id": key},
    )
    return True


def dispatch_failed(*, agent: Agent, bead: Bead, reason: str, now: datetime) -> None:
    log.warning("dispatch of bead %s to %s failed: %s", bead.pk, agent.name, reason)
    with transaction.atomic():
        released = Agent.objects.filter(pk=agent.pk, hooked_bead_id=bead.pk).update(
            hooked_bead=None, status=AgentStatus.IDLE, updated_at=now
        )
        bead_event_record(
            bead=bead,
            kind=BeadEventKind.DISPATCHED,
            actor=Actor.reconciler(),
            note=f"dispatch to {agent.name} failed: {reason}",
            data={"agent": agent.name, "failed": True},
        )
        if released and bead.type == "issue" and bead.status == BeadStatus.IN_PROGRESS:
            bead_assign(bead=bead, agent=None)
            with contextlib.suppress(StaleBeadError, TerminalBeadError):
                bead_set_status(
                    bead=bead,
                    status=BeadStatus.OPEN,
                    actor=Actor.reconciler(),
                    now=now,
                    note=f"dispatch failed: {reason}",
                )
        telemetry_record(
            name="agent.dispatch_failed",
            town_id=agent.town_id,
            rig_id=agent.rig_id,
            bead_id=bead.pk,
            label=agent.role,
            reason=reason,
            data={"agent": agent.name},
        )
