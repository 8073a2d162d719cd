"""The reconciler's rules (domain.md §3, §5): pure functions of a town snapshot and the clock.

Each returns actions and never writes. The guarantee every rule keeps: nothing fails,
re-dispatches, replaces or merges an MR whose PR is open and watched while it waits on a
human, on checks or on GitHub (beads.models.WAITING_BLOCKERS).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from beads.models import (
    TERMINAL_STATUSES,
    WAITING_BLOCKERS,
    BeadStatus,
    BeadType,
    Blocker,
    MergeRequest,
    MergeRequestState,
    ReviewStatus,
    check_interval,
    human_wait_goes_on,
)
from gastown.models import AgentRole, AgentStatus, Convoy, EffectiveSettings, MergeMode
from gastown.models.convoys import ConvoyStatus
from gastown.reconciler import actions as a
from gastown.reconciler.snapshot import TownSnapshot
from gastown.reconciler.watchdog import rule_x_watchdog

LOST_AGENT_AFTER = timedelta(minutes=5)
ORPHANED_REVIEW_AFTER = timedelta(minutes=30)
IDLE_AGENT_GC_AFTER = timedelta(hours=24)
#: Dispatches one tick plans (B1); the rest wait for the next tick, which comes a few seconds
#: later because this one moved something. Each dispatch costs about 20 ms of writes under the
#: town's row lock (README, "Performance"): 25 keep a tick's apply near half a second.
MAX_DISPATCH_PER_TICK = 25


def dispatch_backoff(attempts: int, limits: EffectiveSettings) -> timedelta:
    if attempts <= 0:
        return timedelta(0)
    steps = limits.dispatch_backoff
    return steps[min(attempts, len(steps)) - 1]


def landing_cooldown(attempts: int, limits: EffectiveSettings) -> timedelta:
    # In whole seconds: Python's integers do not overflow where a timedelta would.
    base = limits.landing_cooldown_base // timedelta(seconds=1)
    cap = limits.landing_cooldown_max // timedelta(seconds=1)
    return timedelta(seconds=min(base * 2**attempts, cap))


def _backoff_elapsed(
    attempts: int, last: datetime | None, now: datetime, limits: EffectiveSettings
) -> bool:
    return last is None or now - last >= dispatch_backoff(attempts, limits)


def _terminal_map(s: TownSnapshot) -> dict[int, bool]:
    return {pk: b.status in TERMINAL_STATUSES for pk, b in s.beads.items()}


def breaker_open(s: TownSnapshot) -> bool:
    return s.dispatch_failures_recent >= s.settings_for(None).breaker_threshold


def is_waiting(mr: MergeRequest) -> bool:
    """The PR waits on a human, on checks or on GitHub: no rule may act against its MR."""
    return mr.pr_state in ("", "OPEN") and mr.blocker in WAITING_BLOCKERS


# B1 dispatch -------------------------------------------------------------------------------


def rule_b1_dispatch(s: TownSnapshot) -> Iterator[a.Action]:
    if breaker_open(s):
        key = "dispatch-breaker"
        if key not in s.open_escalation_keys:
            breaker = s.settings_for(None)
            minutes = breaker.breaker_window // timedelta(minutes=1)
            yield a.RaiseEscalation(
                rule="B1",
                key=key,
                title="Dispatch stopped: too many failed dispatches",
                body=f"{s.dispatch_failures_recent} dispatches failed in the last {minutes} "
                f"minutes; dispatch is stopped until fewer than {breaker.breaker_threshold} "
                "failures remain in that window. Check the agent runtime.",
            )
        return
    if s.town.paused:
        return
    terminal = _terminal_map(s)
    hooked = {ag.hooked_bead_id for ag in s.agents if ag.hooked_bead_id}
    free: dict[int | None, list[int]] = {}
    for agent in s.agents:
        if (
            agent.role == AgentRole.POLECAT
            and agent.status == AgentStatus.IDLE
            and agent.hooked_bead_id is None
        ):
            free.setdefault(agent.rig_id, []).append(agent.pk)
    unstarted = {
        c.pk
        for c in s.convoys
        if c.merge_mode == MergeMode.REVIEW_THEN_LAND and not c.feature_branch_created_at
    }
    candidates = sorted(
        (
            b
            for b in s.beads.values()
            if b.type == BeadType.ISSUE
            and b.status == BeadStatus.OPEN
            and b.rig_id is not None
            and b.pk not in hooked
            # (the snapshot's stand-ins for terminal blockers are never open: no check here)
            and b.convoy_id not in unstarted  # its feature branch does not exist yet
        ),
        key=lambda b: (_priority_rank(b.priority), b.created_at, b.pk),
    )
    dispatched = 0
    for bead in candidates:
        if dispatched >= MAX_DISPATCH_PER_TICK:
            return
        if not s.is_unblocked(bead.pk, terminal):
            continue
        limits = s.settings_for(bead.rig_id)
        if bead.dispatch_attempts >= limits.max_dispatch_attempts:
            yield a.FailBead(
                rule="B1",
                bead_id=bead.pk,
                code="dispatch_exhausted",
                message=f"Dispatched {bead.dispatch_attempts} times without success "
                f"(max {limits.max_dispatch_attempts}).",
            )
            continue
        if not _backoff_elapsed(
            bead.dispatch_attempts, bead.last_dispatch_attempt_at, s.now, limits
        ):
            continue
        pool = free.get(bead.rig_id) or []
        agent_id = pool.pop(0) if pool else None
        dispatched += 1
        yield a.DispatchPolecat(rule="B1", bead_id=bead.pk, rig_id=bead.rig_id, agent_id=agent_id)  # type: ignore[arg-type]


def _priority_rank(priority: str) -> int:
    return {"critical": 0, "high": 1, "medium": 2, "low": 3}.get(priority, 2)


# B3 lost agent ------------------------------------------------------------------------------


def rule_b3_lost_agent(s: TownSnapshot) -> Iterator[a.Action]:
    for bead in s.beads.values():
        if bead.type != BeadType.ISSUE or bead.status != BeadStatus.IN_PROGRESS:
            continue
        agent = s.agent_hooked_to(bead.pk)
        if agent is not None and agent.is_live(s.now):
            continue
        last_seen = max(
            (t for t in (bead.updated_at, agent and agent.last_activity_at) if t),
            default=bead.updated_at,
        )
        if s.now - last_seen < LOST_AGENT_AFTER:
            continue
        limits = s.settings_for(bead.rig_id)
        if bead.dispatch_attempts >= limits.max_dispatch_attempts:
            yield a.FailBead(
                rule="B3",
                bead_id=bead.pk,
                code="dispatch_exhausted",
                message="Its agent was lost and the dispatch attempts are used up.",
            )
        else:
            yield a.ReopenBead(
                rule="B3",
                bead_id=bead.pk,
                agent_id=agent.pk if agent else None,
                note="its agent is not live and nothing happened for 5 minutes",
            )


# B4 review safety net -----------------------------------------------------------------------


def rule_b4_review_safety_net(s: TownSnapshot) -> Iterator[a.Action]:
    for bead in s.beads.values():
        if bead.type != BeadType.ISSUE or bead.status != BeadStatus.IN_REVIEW:
            continue
        mrs = s.mrs_by_source.get(bead.pk, [])
        if not mrs or any(mr.is_active for mr in mrs):
            continue
        if any(mr.state == MergeRequestState.MERGED for mr in mrs):
            yield a.CloseBead(rule="B4", bead_id=bead.pk, note="its merge request merged")
        else:
            yield a.ReopenBead(
                rule="B4", bead_id=bead.pk, agent_id=None, note="all its merge requests failed"
            )


# R1 due for a feedback check ------------------------------------------------------------------


def mr_is_due(s: TownSnapshot, mr: MergeRequest) -> bool:
    if not mr.pr_url:
        return False
    if mr.check_requested_at is not None or mr.last_checked_at is None:
        return True
    settings = s.settings_for(mr.bead.rig_id)
    return s.now - mr.last_checked_at >= check_interval(
        mr.blocker,
        failing=bool(mr.consecutive_transient_failures or mr.consecutive_malformed_failures),
        poll_interval=settings.poll_interval,
        safety_net=settings.safety_net,
    )


def rule_r1_due(s: TownSnapshot) -> Iterator[a.Action]:
    if s.town.github_blocked_until and s.town.github_blocked_until > s.now:
        return
    due = sum(1 for mr in s.merge_requests if mr_is_due(s, mr))
    if due:
        yield a.RequestFeedbackCheck(rule="R1", due=due)


# R4 orphaned review ---------------------------------------------------------------------------


def rule_r4_orphaned_review(s: TownSnapshot) -> Iterator[a.Action]:
    if s.town.github_blocked_until:
        return  # a town-level GitHub problem is escalated; it is nobody's MR's fault
    for mr in s.merge_requests:
        bead = mr.bead
        if mr.state != MergeRequestState.IN_PROGRESS or not mr.pr_url:
            continue
        if is_waiting(mr) or mr.awaiting_approval:
            continue
        agent = s.agent_hooked_to(bead.pk)
        if agent is not None and agent.is_live(s.now):
            continue
        last = max(
            t
            for t in (
                bead.updated_at,
                mr.last_successful_check_at,
                agent.last_activity_at if agent else None,
            )
            if t
        )
        if s.now - last >= ORPHANED_REVIEW_AFTER:
            yield a.FailBead(
                rule="R4",
                bead_id=bead.pk,
                code="orphaned_review",
                message="Nobody has watched this PR for 30 minutes (no successful check, "
                "no agent activity).",
            )


# R5 refinery pop, R6 refinery re-dispatch, R7 release -----------------------------------------


class _Gate(enum.Enum):
    GO = "go"
    WAIT = "wait"
    EXHAUSTED = "exhausted"


def _dispatch_stopped(s: TownSnapshot) -> bool:
    return s.town.paused or breaker_open(s)


def _waits_on_human(mr: MergeRequest) -> bool:
    return mr.awaiting_approval or mr.blocker == Blocker.HUMAN_REVIEW


def _refinery_gate(s: TownSnapshot, mr: MergeRequest) -> _Gate:
    """The one guard of every refinery dispatch (R5 and R6): nothing while the town is paused
    or the breaker is open; then the MR's back-off; then its max attempts. The back-off comes
    first so the last dispatch gets its time to be answered before the MR fails."""
    if _dispatch_stopped(s):
        return _Gate.WAIT
    bead = mr.bead
    limits = s.settings_for(bead.rig_id)
    if not _backoff_elapsed(bead.dispatch_attempts, bead.last_dispatch_attempt_at, s.now, limits):
        return _Gate.WAIT
    if bead.dispatch_attempts >= limits.max_dispatch_attempts:
        return _Gate.EXHAUSTED
    return _Gate.GO


def _review_dispatch_exhausted(rule: str, mr: MergeRequest) -> a.FailBead:
    return a.FailBead(
        rule=rule,
        bead_id=mr.bead_id,
        code="review_dispatch_exhausted",
        message=f"The refinery was dispatched {mr.bead.dispatch_attempts} times without a review.",
    )


def rule_r5_r6_r7_refinery(s: TownSnapshot) -> Iterator[a.Action]:
    by_pk = {mr.bead_id: mr for mr in s.merge_requests}
    busy_refineries: set[int] = set()
    for agent in s.agents:
        if agent.role != AgentRole.REFINERY or agent.hooked_bead_id is None:
            continue
        mr = by_pk.get(agent.hooked_bead_id)
        hooked = s.beads.get(agent.hooked_bead_id)
        if mr is None or hooked is None or hooked.status in TERMINAL_STATUSES:
            yield a.UnhookAgent(
                rule="R7",
                agent_id=agent.pk,
                bead_id=agent.hooked_bead_id,
                note="its merge request is finished",
            )
            continue
        if _waits_on_human(mr):
            yield a.UnhookAgent(
                rule="R7",
                agent_id=agent.pk,
                bead_id=agent.hooked_bead_id,
                note="the PR waits on a human; the wait belongs to the PR, not the refinery",
            )
            continue
        busy_refineries.add(agent.pk)
        if (
            agent.status == AgentStatus.IDLE
            and mr.review_status == ReviewStatus.PENDING
            and mr.state == MergeRequestState.IN_PROGRESS
            and not is_waiting(mr)
        ):
            gate = _refinery_gate(s, mr)
            if gate == _Gate.EXHAUSTED:
                yield _review_dispatch_exhausted("R6", mr)
            elif gate == _Gate.GO:
                yield a.DispatchRefinery(
                    rule="R6",
                    mr_id=mr.pk,
                    bead_id=mr.bead_id,
                    rig_id=mr.bead.rig_id,  # type: ignore[arg-type]
                    agent_id=agent.pk,
                    # Its PR was never recorded (the opening died or failed): open or adopt
                    # it first; the refinery hears of the MR once it has one.
                    open_pr=not mr.pr_url,
                )

    for rig_id in s.rigs:
        yield from _r5_for_rig(s, rig_id, busy_refineries)


def _r5_for_rig(s: TownSnapshot, rig_id: int, busy: set[int]) -> Iterator[a.Action]:
    terminal = _terminal_map(s)
    limits = s.settings_for(rig_id)
    code_review = limits.code_review
    rig_mrs = sorted(
        (
            mr
            for mr in s.merge_requests
            if mr.bead.rig_id == rig_id and mr.is_active and s.is_unblocked(mr.bead_id, terminal)
        ),
        key=lambda mr: (mr.bead.created_at, mr.pk),
    )
    if not code_review:
        for mr in rig_mrs:
            if mr.state == MergeRequestState.OPEN and _backoff_elapsed(
                mr.bead.dispatch_attempts, mr.bead.last_dispatch_attempt_at, s.now, limits
            ):
                yield a.WatchMergeRequest(
                    rule="R5", mr_id=mr.pk, bead_id=mr.bead_id, open_pr=not mr.pr_url
                )
        return
    refinery = next(
        (ag for ag in s.agents if ag.role == AgentRole.REFINERY and ag.rig_id == rig_id), None
    )
    if refinery is not None and (refinery.pk in busy or refinery.hooked_bead_id is not None):
        return
    if refinery is not None and refinery.status != AgentStatus.IDLE:
        return
    if _dispatch_stopped(s):
        return
    hooked = {ag.hooked_bead_id for ag in s.agents if ag.hooked_bead_id}
    for mr in rig_mrs:
        # An in-progress MR nobody reviews: R7 released its refinery for a wait that is over,
        # or a refused notification did.
        waiting_review = (
            mr.state == MergeRequestState.IN_PROGRESS
            and mr.review_status == ReviewStatus.PENDING
            and not _waits_on_human(mr)
            and mr.bead_id not in hooked
        )
        if mr.state != MergeRequestState.OPEN and not waiting_review:
            continue
        gate = _refinery_gate(s, mr)
        if gate == _Gate.EXHAUSTED:
            if is_waiting(mr):
                continue  # the guarantee (domain.md §3): an MR whose PR waits is never failed
            if mr.pr_url:
                yield _review_dispatch_exhausted("R5", mr)
            else:
                yield a.FailBead(
                    rule="R5",
                    bead_id=mr.bead_id,
                    code="pr_open_failed",
                    message=f"Opening its PR failed {mr.bead.dispatch_attempts} times: "
                    f"{mr.last_error}",
                )
            continue
        if gate == _Gate.GO:
            yield a.DispatchRefinery(
                rule="R5",
                mr_id=mr.pk,
                bead_id=mr.bead_id,
                rig_id=rig_id,
                agent_id=refinery.pk if refinery else None,
                open_pr=not mr.pr_url,
            )
            return


# W long wait -------------------------------------------------------------------------------


def rule_w_long_wait(s: TownSnapshot) -> Iterator[a.Action]:
    for mr in s.merge_requests:
        if not mr.awaiting_approval or mr.waiting_since is None:
            continue
        if mr.wait_escalated_at and mr.wait_escalated_at >= mr.waiting_since:
            continue  # this wait was escalated already (an earlier wait's mark does not count)
        threshold = s.settings_for(mr.bead.rig_id).human_wait_escalation
        if s.now - mr.waiting_since < threshold:
            continue
        reviewers = ", ".join(mr.requested_reviewers or []) or "any reviewer with write access"
        hours = int((s.now - mr.waiting_since).total_seconds() // 3600)
        yield a.RaiseEscalation(
            rule="W",
            key=f"wait:mr:{mr.pk}",
            title=f"PR waiting on a human for {hours} h: {mr.pr_url}"[:300],
            body=f"{mr.pr_url} has waited for approval since {mr.waiting_since:%Y-%m-%d %H:%M} "
            f"UTC. GitHub is waiting for: {reviewers}.",
            rig_id=mr.bead.rig_id,
            wait_mr_id=mr.pk,
        )


# GC ------------------------------------------------------------------------------------------


def rule_gc_agents(s: TownSnapshot) -> Iterator[a.Action]:
    for agent in s.agents:
        if agent.status != AgentStatus.IDLE or agent.hooked_bead_id is not None:
            continue
        last = max(t for t in (agent.created_at, agent.last_activity_at) if t)
        if s.now - last >= IDLE_AGENT_GC_AFTER:
            yield a.RemoveAgent(rule="GC", agent_id=agent.pk, name=agent.name)


# C convoy landing (domain.md §5) --------------------------------------------------------------


def _mr_merged(mr: MergeRequest) -> bool:
    return mr.state == MergeRequestState.MERGED and (
        mr.merged_at is not None or mr.pr_state == "MERGED"
    )


#: When a failed feature-branch creation (Convoy.feature_branch_failed_at) is tried again.
BRANCH_RETRY = timedelta(minutes=1)
#: A held landing PR in one of these states keeps its suppression: a person (or GitHub, still
#: computing) has yet to move. Any other open state means the approval landed.
_STILL_WAITING = frozenset({Blocker.HUMAN_REVIEW, Blocker.UNKNOWN, Blocker.NONE})
#: Failure codes of a landing MR whose PR is gone or never was: its last snapshot is stale.
_PR_GONE = frozenset({"pr_not_found", "unrecognized_url"})
#: What a held landing PR waiting on a reviewer may also need fixed on its feature branch.
_HELD_FIXABLE = {
    Blocker.CHECKS_FAILING: "failing checks",
    Blocker.THREADS: "unresolved threads",
}


def rule_c_landing(s: TownSnapshot) -> Iterator[a.Action]:
    for convoy in s.convoys:
        members = s.convoy_members.get(convoy.pk, [])
        failed = [b for b in members if b.status == BeadStatus.FAILED]
        if convoy.status == ConvoyStatus.OPEN:
            if (
                convoy.merge_mode == MergeMode.REVIEW_THEN_LAND
                and not convoy.feature_branch_created_at
            ):
                failed_at = convoy.feature_branch_failed_at
                failed_lately = failed_at is not None and s.now - failed_at < BRANCH_RETRY
                if not failed_lately:
                    yield a.ConvoyStart(rule="C", convoy_id=convoy.pk)
                continue
            if failed:
                key = f"convoy-held:{convoy.pk}"
                if key not in s.open_escalation_keys:
                    names = ", ".join(str(b) for b in failed[:5])  # bd-N and title
                    yield a.RaiseEscalation(
                        rule="C",
                        key=key,
                        title=f"Convoy held by a failed bead: {convoy.title}"[:300],
                        body=f"Failed: {names}. Retry the work as a new bead, remove the failed "
                        "bead from the convoy, or close the convoy.",
                        rig_id=convoy.rig_id,
                        convoy_id=convoy.pk,
                    )
                continue
            if not members or any(b.status != BeadStatus.CLOSED for b in members):
                continue
            member_ids = {b.pk for b in members}
            in_flight = any(mr.is_active and mr.source_id in member_ids for mr in s.merge_requests)
            if in_flight:
                continue
            if convoy.merge_mode == MergeMode.REVIEW_AND_MERGE:
                yield a.ConvoyLand(rule="C", convoy_id=convoy.pk, note="every bead is closed")
            else:
                yield a.ConvoyReadyToLand(rule="C", convoy_id=convoy.pk)
            continue
        yield from _landing_steps(s, convoy)


def _landing_steps(s: TownSnapshot, convoy: Convoy) -> Iterator[a.Action]:
    landing = sorted(s.landing_mrs.get(convoy.pk, []), key=lambda mr: (mr.created_at, mr.pk))
    if any(_mr_merged(mr) for mr in landing):
        if convoy.respawn_suppressed_since:
            yield a.EndSuppression(rule="C", convoy_id=convoy.pk, how="merged")
        yield a.ConvoyLand(rule="C", convoy_id=convoy.pk, note="its landing PR merged")
        return
    if any(mr.is_active for mr in landing):
        return
    limits = s.settings_for(convoy.rig_id)
    if convoy.respawn_suppressed_since:
        held = next((mr for mr in landing if mr.pk == convoy.suppressed_landing_mr_id), None)
        if held is None:
            yield a.EndSuppression(rule="C", convoy_id=convoy.pk, how="closed")
            return
        if held.pr_state == "MERGED":
            yield a.EndSuppression(rule="C", convoy_id=convoy.pk, how="merged")
            yield a.ConvoyLand(rule="C", convoy_id=convoy.pk, note="its landing PR merged")
        elif held.pr_state == "CLOSED" or held.last_error_kind == "not_found":
            yield a.EndSuppression(rule="C", convoy_id=convoy.pk, how="closed")
            yield a.RaiseEscalation(
                rule="C",
                key=f"suppression-closed:{convoy.pk}:{held.pk}",
                title=f"Landing PR closed while waiting for approval: {convoy.title}"[:300],
                body=f"{held.pr_url} was closed or cannot be read any more; the convoy's "
                "landing is retried with a new landing MR after the cool-down.",
                rig_id=convoy.rig_id,
                convoy_id=convoy.pk,
            )
        elif held.changes_requested:
            key = f"suppression-changes:{convoy.pk}:{held.pk}:{held.head_sha}"
            if key not in s.open_escalation_keys:
                yield a.RaiseEscalation(
                    rule="C",
                    key=key,
                    title=f"Changes requested on a landing PR: {convoy.title}"[:300],
                    body=f"A reviewer requested changes on {held.pr_url}. Fix the feature "
                    f"branch {convoy.feature_branch}; the respawn stays suppressed.",
                    rig_id=convoy.rig_id,
                    convoy_id=convoy.pk,
                )
        elif held.blocker in _HELD_FIXABLE and held.review_decision != "APPROVED":
            # Still waiting on a reviewer, so the suppression stays; but the held MR is
            # terminal (no rework is asked) and rule W skips it: tell the team lead.
            cause = _HELD_FIXABLE[Blocker(held.blocker)]
            key = f"suppression-{held.blocker}:{convoy.pk}:{held.pk}:{held.head_sha}"
            if key not in s.open_escalation_keys:
                yield a.RaiseEscalation(
                    rule="C",
                    key=key,
                    title=f"Landing PR waiting for review has {cause}: {convoy.title}"[:300],
                    body=f"{held.pr_url} waits for review and also has {cause}. Fix them "
                    f"on the feature branch {convoy.feature_branch}; the respawn stays "
                    "suppressed.",
                    rig_id=convoy.rig_id,
                    convoy_id=convoy.pk,
                )
        elif held.blocker not in _STILL_WAITING and not human_wait_goes_on(
            held.blocker, held.review_decision
        ):
            # Approved (or the rule that wanted a human is gone): the PR no longer waits on a
            # person. A new landing MR adopts it and the usual MR rules take over: merge when
            # ready, wait on checks, escalate what an agent cannot fix on a landing PR.
            yield a.EndSuppression(rule="C", convoy_id=convoy.pk, how="approved")
            yield a.CreateLandingMergeRequest(
                rule="C", convoy_id=convoy.pk, adopt_pr_url=held.pr_url, count_attempt=False
            )
        return
    last = landing[-1] if landing else None
    if (
        last is not None
        and last.bead.status == BeadStatus.FAILED
        and last.bead.failure_code not in _PR_GONE
        and last.pr_url
        and last.pr_state in ("", "OPEN")
        and (last.awaiting_approval or last.blocker == Blocker.HUMAN_REVIEW)
    ):
        yield a.SuppressRespawn(
            rule="C",
            convoy_id=convoy.pk,
            mr_id=last.pk,
            pr_url=last.pr_url,
            attempt=convoy.landing_attempts + 1,
        )
        return
    if convoy.landing_attempts >= limits.max_landing_attempts:
        yield a.ConvoyFail(
            rule="C",
            convoy_id=convoy.pk,
            reason="landing_mr_exhausted",
            message=f"{convoy.landing_attempts} landing attempts failed "
            f"(max {limits.max_landing_attempts}).",
        )
        return
    if convoy.last_landing_attempt_at is not None and (
        s.now - convoy.last_landing_attempt_at < landing_cooldown(convoy.landing_attempts, limits)
    ):
        return
    yield a.CreateLandingMergeRequest(
        rule="C", convoy_id=convoy.pk, adopt_pr_url="", count_attempt=True
    )


RULES: tuple[Callable[[TownSnapshot], Iterator[a.Action]], ...] = (
    rule_b1_dispatch,
    rule_b3_lost_agent,
    rule_b4_review_safety_net,
    rule_r1_due,
    rule_r4_orphaned_review,
    rule_r5_r6_r7_refinery,
    rule_w_long_wait,
    rule_c_landing,
    rule_gc_agents,
)


def plan(s: TownSnapshot) -> list[a.Action]:
    planned: list[a.Action] = []
    for rule in RULES:
        planned.extend(rule(s))
    # Last: the watchdog looks for what none of the rules above moves (docs/domain.md §3).
    planned.extend(rule_x_watchdog(s, planned))
    return planned
