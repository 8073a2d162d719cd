"""Apply planned actions in the tick's transaction; return the side effects to run after
commit. Every write is conditional on the state the rule saw, so an action that lost a race
(another worker, an agent report) is skipped instead of applied twice."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from beads.audit import Actor
from beads.merge_requests import (
    MergeRequestTransitionRefused,
    merge_request_transition,
    merge_request_write,
)
from beads.models import Bead, BeadEventKind, BeadStatus, BeadType, MergeRequest, MergeRequestState
from beads.services import (
    StaleBeadError,
    TerminalBeadError,
    bead_assign,
    bead_dispatch_count,
    bead_dispatch_reset,
    bead_event_record,
    bead_set_status,
    escalation_raise,
    merge_request_create,
)
from gastown.logs import log_context
from gastown.models import Agent, AgentRole, AgentStatus, Convoy, IntentKind, Town
from gastown.models.convoys import ConvoyStatus
from gastown.reconciler import actions as a
from gastown.services.convoys import (
    ConvoyTransitionRefused,
    convoy_feature_branch_assign,
    convoy_suppress,
    convoy_suppression_end,
    convoy_transition,
)
from gastown.services.intents import intent_record
from gastown.services.telemetry import duration_ms, telemetry_record

log = logging.getLogger(__name__)
RECONCILER = Actor.reconciler()


@dataclass(frozen=True)
class SideEffect:
    """What runs after commit and may be lost without harm (asking for a feedback check: the
    schedule asks again). Effects outside that must not be lost or doubled are intents
    (gastown.services.intents; docs/architecture.md, "Side effects and crashes")."""

    kind: str  # feedback_check
    target_id: int
    bead_id: int | None = None


class Skipped(Exception):
    """The action's precondition no longer holds."""


def apply_actions(
    town: Town, planned: list[a.Action], now: datetime
) -> tuple[list[a.Action], list[SideEffect]]:
    applied: list[a.Action] = []
    effects: list[SideEffect] = []
    for action in planned:
        handler = _HANDLERS[type(action)]
        try:
            with log_context(bead=getattr(action, "bead_id", None)), transaction.atomic():
                effects.extend(handler(town, action, now))
        except (
            Skipped,
            StaleBeadError,
            TerminalBeadError,
            MergeRequestTransitionRefused,
            IntegrityError,
        ) as exc:
            with log_context(bead=getattr(action, "bead_id", None)):
                log.info("reconciler skipped %s: %s", action.describe(), exc)
            continue
        applied.append(action)
    return applied, effects


def _bead(bead_id: int) -> Bead:
    try:
        return Bead.objects.select_related("town").get(pk=bead_id)
    except Bead.DoesNotExist:
        raise Skipped(f"bead {bead_id} is gone") from None


def _merge_request_of(bead: Bead) -> MergeRequest:
    mr = MergeRequest.objects.filter(bead=bead).first()
    if mr is None:
        raise Skipped(f"bead {bead.pk} has no merge request")
    mr.bead = bead
    return mr


def _hook(agent: Agent, bead: Bead, now: datetime, note: str) -> None:
    changed = Agent.objects.filter(pk=agent.pk, hooked_bead__isnull=True).update(
        hooked_bead=bead,
        last_dispatch_at=now,
        dispatch_attempts=F("dispatch_attempts") + 1,
        updated_at=now,
    )
    if changed != 1:
        raise Skipped(f"agent {agent.name} is already hooked")
    bead_event_record(
        bead=bead,
        kind=BeadEventKind.HOOKED,
        actor=RECONCILER,
        note=note,
        data={"agent": agent.name, "role": agent.role},
    )


#: Hex characters of a new agent's name suffix: 48 bits, so a town with a million agents
#: draws a taken name about once in 500 creations; the unique constraint
#: (agent_unique_name_per_town) catches it and the name is drawn again.
AGENT_SUFFIX_LENGTH = 12
AGENT_NAME_DRAWS = 5


def _new_agent(town: Town, rig_id: int, role: str) -> Agent:
    for _ in range(AGENT_NAME_DRAWS):
        suffix = uuid.uuid4().hex[:AGENT_SUFFIX_LENGTH]
        name = f"refinery-{rig_id}-{suffix}" if role == AgentRole.REFINERY else f"polecat-{suffix}"
        try:
            with transaction.atomic():  # a savepoint: a taken name leaves the action going
                return Agent.objects.create(town=town, rig_id=rig_id, role=role, name=name)
        except IntegrityError:
            if not Agent.objects.filter(town=town, name=name).exists():
                raise  # another constraint (one refinery per rig): not a name to draw again
    raise Skipped(f"no free agent name in {AGENT_NAME_DRAWS} draws")


def _dispatch_polecat(town: Town, action: a.DispatchPolecat, now: datetime) -> list[SideEffect]:
    bead = _bead(action.bead_id)
    if bead.status != BeadStatus.OPEN:
        raise Skipped("bead is no longer open")
    agent = (
        Agent.objects.get(pk=action.agent_id)
        if action.agent_id
        else _new_agent(town, action.rig_id, AgentRole.POLECAT)
    )
    bead_dispatch_count(bead=bead, now=now)
    bead_assign(bead=bead, agent=agent)
    bead_set_status(
        bead=bead,
        status=BeadStatus.IN_PROGRESS,
        actor=RECONCILER,
        now=now,
        note=f"dispatched to {agent.name} (attempt {bead.dispatch_attempts})",
        data={"agent": agent.name, "dispatch_attempt": bead.dispatch_attempts},
    )
    _hook(agent, bead, now, f"hooked to {agent.name}")
    _intend_dispatch(town, agent, bead, now)
    return []


def _intend_dispatch(town: Town, agent: Agent, bead: Bead, now: datetime) -> None:
    intent_record(
        town=town,
        kind=IntentKind.DISPATCH,
        target_id=agent.pk,
        subject=f"bead:{bead.pk}",
        bead_id=bead.pk,
        now=now,
        reuse_unfinished=False,
    )


def _intend_open_pr(town: Town, mr_id: int, bead: Bead, now: datetime) -> None:
    intent_record(
        town=town,
        kind=IntentKind.OPEN_PR,
        target_id=mr_id,
        subject=f"mr:{mr_id}",
        bead_id=bead.pk,
        now=now,
    )


def _dispatch_refinery(town: Town, action: a.DispatchRefinery, now: datetime) -> list[SideEffect]:
    bead = _bead(action.bead_id)
    if bead.is_terminal:
        raise Skipped("MR is terminal")
    if action.agent_id:
        agent = Agent.objects.get(pk=action.agent_id)
    else:
        agent = _new_agent(town, action.rig_id, AgentRole.REFINERY)
    bead_dispatch_count(bead=bead, now=now)
    mr = _merge_request_of(bead)
    if mr.state == MergeRequestState.OPEN:
        merge_request_transition(
            merge_request=mr,
            transition="watch",
            actor=RECONCILER,
            now=now,
            note=f"the refinery {agent.name} reviews it",
        )
    if agent.hooked_bead_id != bead.pk:
        _hook(agent, bead, now, f"refinery {agent.name} reviews it")
    else:
        Agent.objects.filter(pk=agent.pk).update(
            last_dispatch_at=now, dispatch_attempts=F("dispatch_attempts") + 1
        )
    # The PR first: the refinery's notification waits for it (effects.run_intents).
    if action.open_pr:
        _intend_open_pr(town, action.mr_id, bead, now)
    _intend_dispatch(town, agent, bead, now)
    return []


def _watch(town: Town, action: a.WatchMergeRequest, now: datetime) -> list[SideEffect]:
    bead = _bead(action.bead_id)
    mr = _merge_request_of(bead)
    if mr.state != MergeRequestState.OPEN:
        raise Skipped("MR is no longer open")
    if action.open_pr:
        bead_dispatch_count(bead=bead, now=now)
    merge_request_transition(
        merge_request=mr,
        transition="watch",
        actor=RECONCILER,
        now=now,
        note="watched (code review off)",
    )
    if action.open_pr:
        _intend_open_pr(town, action.mr_id, bead, now)
    return []


def _unhook_agents_of(bead: Bead, now: datetime, note: str) -> None:
    for agent in Agent.objects.filter(hooked_bead=bead):
        Agent.objects.filter(pk=agent.pk).update(
            hooked_bead=None, status=AgentStatus.IDLE, updated_at=now
        )
        bead_event_record(
            bead=bead,
            kind=BeadEventKind.UNHOOKED,
            actor=RECONCILER,
            note=note,
            data={"agent": agent.name},
        )


def _fail(town: Town, action: a.FailBead, now: datetime) -> list[SideEffect]:
    bead = _bead(action.bead_id)
    if bead.type == BeadType.MERGE_REQUEST:
        merge_request_transition(
            merge_request=_merge_request_of(bead),
            transition="fail",
            actor=RECONCILER,
            now=now,
            failure_code=action.code,
            failure_message=action.message,
            data={"rule": action.rule},
        )
    else:
        bead_set_status(
            bead=bead,
            status=BeadStatus.FAILED,
            actor=RECONCILER,
            now=now,
            failure_code=action.code,
            failure_message=action.message,
            data={"rule": action.rule},
        )
    _unhook_agents_of(bead, now, f"bead failed ({action.code})")
    return []


def _reopen(town: Town, action: a.ReopenBead, now: datetime) -> list[SideEffect]:
    bead = _bead(action.bead_id)
    _unhook_agents_of(bead, now, action.note)
    bead_assign(bead=bead, agent=None)
    bead_set_status(bead=bead, status=BeadStatus.OPEN, actor=RECONCILER, now=now, note=action.note)
    return []


def _close(town: Town, action: a.CloseBead, now: datetime) -> list[SideEffect]:
    bead = _bead(action.bead_id)
    bead_set_status(
        bead=bead, status=BeadStatus.CLOSED, actor=RECONCILER, now=now, note=action.note
    )
    _unhook_agents_of(bead, now, action.note)
    return []


def _unhook(town: Town, action: a.UnhookAgent, now: datetime) -> list[SideEffect]:
    changed = Agent.objects.filter(pk=action.agent_id, hooked_bead_id=action.bead_id).update(
        hooked_bead=None, status=AgentStatus.IDLE, updated_at=now
    )
    if changed != 1:
        raise Skipped("agent is no longer hooked to that bead")
    bead = Bead.objects.filter(pk=action.bead_id).first()
    if bead is not None:
        data: dict[str, Any] = {"agent_id": action.agent_id, "rule": action.rule}
        if (
            action.rule == "R7"
            and bead.type == BeadType.MERGE_REQUEST
            and not bead.is_terminal
            and bead.dispatch_attempts
        ):
            # R7 releases a refinery from a live MR only while its PR waits on a human, and a
            # wait counts no attempts (domain.md §3): the review dispatches after it start afresh,
            # or an MR that waited a few times would fail as review_dispatch_exhausted.
            data["dispatch_attempts_reset_from"] = bead.dispatch_attempts
            bead_dispatch_reset(bead=bead)
        bead_event_record(
            bead=bead,
            kind=BeadEventKind.UNHOOKED,
            actor=RECONCILER,
            note=action.note,
            data=data,
        )
    return []


def _escalate(town: Town, action: a.RaiseEscalation, now: datetime) -> list[SideEffect]:
    convoy = Convoy.objects.filter(pk=action.convoy_id).first() if action.convoy_id else None
    rig = town.rigs.filter(pk=action.rig_id).first() if action.rig_id else None
    escalation_raise(
        town=town,
        key=action.key,
        title=action.title,
        body=action.body,
        rig=rig,
        convoy=convoy,
        actor=RECONCILER,
    )
    if action.wait_mr_id:
        merge_request_write(
            pks=[action.wait_mr_id], now=now, new_version=False, wait_escalated_at=now
        )
    return []


def _remove_agent(town: Town, action: a.RemoveAgent, now: datetime) -> list[SideEffect]:
    deleted, _ = Agent.objects.filter(
        pk=action.agent_id, status=AgentStatus.IDLE, hooked_bead__isnull=True
    ).delete()
    if not deleted:
        raise Skipped("agent is busy again")
    return []


def _request_check(town: Town, action: a.RequestFeedbackCheck, now: datetime) -> list[SideEffect]:
    return [SideEffect("feedback_check", town.pk)]


# Convoys ------------------------------------------------------------------------------------


def _convoy(convoy_id: int, *statuses: str) -> Convoy:
    convoy = Convoy.objects.select_related("rig").filter(pk=convoy_id).first()
    if convoy is None or (statuses and convoy.status not in statuses):
        raise Skipped(f"convoy {convoy_id} is gone or moved on")
    return convoy


def _set_convoy(convoy: Convoy, now: datetime, note: str, *, status: str, **fields: Any) -> None:
    try:
        convoy_transition(convoy=convoy, to=status, now=now, note=note, **fields)
    except ConvoyTransitionRefused as refused:
        raise Skipped(str(refused)) from None


def _convoy_start(town: Town, action: a.ConvoyStart, now: datetime) -> list[SideEffect]:
    convoy = _convoy(action.convoy_id, ConvoyStatus.OPEN)
    convoy_feature_branch_assign(convoy=convoy)
    intent_record(
        town=town,
        kind=IntentKind.CREATE_BRANCH,
        target_id=convoy.pk,
        subject=f"convoy:{convoy.pk}",
        now=now,
    )
    return []


def _convoy_ready(town: Town, action: a.ConvoyReadyToLand, now: datetime) -> list[SideEffect]:
    convoy = _convoy(action.convoy_id, ConvoyStatus.OPEN)
    _set_convoy(
        convoy,
        now,
        "ready to land: every bead is closed",
        status=ConvoyStatus.READY_TO_LAND,
    )
    return []


def _landing_mr(town: Town, action: a.CreateLandingMergeRequest, now: datetime) -> list[SideEffect]:
    convoy = _convoy(action.convoy_id, ConvoyStatus.READY_TO_LAND, ConvoyStatus.LANDING)
    assert convoy.rig is not None
    fields: dict[str, Any] = {"status": ConvoyStatus.LANDING}
    attempt = convoy.landing_attempts
    if action.count_attempt:
        attempt += 1
        fields.update(landing_attempts=attempt, last_landing_attempt_at=now)
    _set_convoy(
        convoy,
        now,
        f"landing MR created (attempt {attempt})"
        if action.count_attempt
        else f"landing MR adopts {action.adopt_pr_url} (no attempt counted)",
        **fields,
    )
    # The partial unique index allows one active landing MR per convoy: a racing worker's
    # insert fails with IntegrityError and its whole action rolls back.
    merge_request_create(
        town=town,
        rig=convoy.rig,
        title=f"Land convoy: {convoy.title}"[:300],
        branch=convoy.feature_branch,
        target_branch=convoy.rig.default_branch,
        actor=RECONCILER,
        landing_convoy=convoy,
        pr_url=action.adopt_pr_url,
        adopted=bool(action.adopt_pr_url),
    )
    return []


def _convoy_land(town: Town, action: a.ConvoyLand, now: datetime) -> list[SideEffect]:
    convoy = _convoy(
        action.convoy_id, ConvoyStatus.OPEN, ConvoyStatus.READY_TO_LAND, ConvoyStatus.LANDING
    )
    _set_convoy(
        convoy,
        now,
        f"landed: {action.note}",
        status=ConvoyStatus.LANDED,
        landed_at=now,
    )
    telemetry_record(
        name="convoy.landed",
        town_id=town.pk,
        rig_id=convoy.rig_id,
        convoy_id=convoy.pk,
        label=convoy.merge_mode,
        reason=action.note,
        duration_ms=duration_ms(convoy.created_at, now),
    )
    return []


def _convoy_fail(town: Town, action: a.ConvoyFail, now: datetime) -> list[SideEffect]:
    convoy = _convoy(action.convoy_id, ConvoyStatus.READY_TO_LAND, ConvoyStatus.LANDING)
    _set_convoy(
        convoy,
        now,
        f"failed: {action.message}",
        status=ConvoyStatus.FAILED,
        failure_reason=action.reason,
        failure_message=action.message,
    )
    telemetry_record(
        name="convoy.failed",
        town_id=town.pk,
        rig_id=convoy.rig_id,
        convoy_id=convoy.pk,
        label=convoy.merge_mode,
        reason=action.reason,
        duration_ms=duration_ms(convoy.created_at, now),
    )
    return []


def _suppress(town: Town, action: a.SuppressRespawn, now: datetime) -> list[SideEffect]:
    mr = MergeRequest.objects.select_related("bead").filter(pk=action.mr_id).first()
    if mr is None:
        raise Skipped(f"landing MR {action.mr_id} is gone")
    if not convoy_suppress(
        convoy_id=action.convoy_id, mr=mr, pr_url=action.pr_url, attempt=action.attempt, now=now
    ):
        raise Skipped("suppression already recorded")
    convoy = _convoy(action.convoy_id)
    bead_event_record(
        bead=mr.bead,
        kind=BeadEventKind.NOTE,
        actor=RECONCILER,
        note=f"landing respawn suppressed: {action.pr_url} waits on a human "
        f"(attempt {action.attempt} not made)",
    )
    telemetry_record(
        name="reconciler.respawn_suppressed",
        town_id=town.pk,
        rig_id=convoy.rig_id,
        convoy_id=convoy.pk,
        bead_id=mr.bead_id,
        reason="human_review",
        value=float(action.attempt),
        data={"landing_mr": mr.pk, "pr_url": action.pr_url, "attempt": action.attempt},
    )
    return []


def _end_suppression(town: Town, action: a.EndSuppression, now: datetime) -> list[SideEffect]:
    if not convoy_suppression_end(convoy=_convoy(action.convoy_id), how=action.how, now=now):
        raise Skipped("no suppression, or it ended concurrently")
    return []


_HANDLERS: dict[type[a.Action], Callable[[Town, Any, datetime], list[SideEffect]]] = {
    a.DispatchPolecat: _dispatch_polecat,
    a.DispatchRefinery: _dispatch_refinery,
    a.WatchMergeRequest: _watch,
    a.FailBead: _fail,
    a.ReopenBead: _reopen,
    a.CloseBead: _close,
    a.UnhookAgent: _unhook,
    a.RaiseEscalation: _escalate,
    a.RemoveAgent: _remove_agent,
    a.RequestFeedbackCheck: _request_check,
    a.ConvoyStart: _convoy_start,
    a.ConvoyReadyToLand: _convoy_ready,
    a.CreateLandingMergeRequest: _landing_mr,
    a.ConvoyLand: _convoy_land,
    a.ConvoyFail: _convoy_fail,
    a.SuppressRespawn: _suppress,
    a.EndSuppression: _end_suppression,
}
