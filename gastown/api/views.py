"""API v1 endpoints: thin views over the bead services and the agent reports.

A token acts for its own town only: every object is looked up inside that town, so another
town's objects answer 404 exactly like missing ones.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

from beads.audit import Actor
from beads.models import (
    Bead,
    BeadType,
    MergeRequest,
    Priority,
)
from beads.services import (
    bead_add_dependency,
    bead_convoy_problem,
    bead_create,
    dependency_cycle,
)
from gastown.api.http import (
    ApiError,
    api_endpoint,
    as_id,
    bad_request,
    clean_path_text,
    get_bool,
    get_choice,
    get_id,
    get_list,
    get_str,
    not_found,
    refuse_unknown,
)
from gastown.api.serialize import agent_json, bead_json, convoy_json, merge_request_json
from gastown.dashboard.selectors import awaiting_approval_list
from gastown.models import Agent, ApiToken, Convoy, MergeMode, Rig, Town
from gastown.services.convoys import convoy_create
from gastown.services.reports import (
    ReportInvalid,
    ReportRefused,
    agent_fetch_assignment,
    agent_heartbeat,
    agent_report_done,
    agent_report_failure,
    refinery_report_review,
)
from scm.errors import ScmError
from scm.urls import parse_pr_url

MAX_LABELS = 20
MAX_LINKS = 50
MAX_CONVOY_BEADS = 100
AWAITING_DEFAULT_LIMIT = 50
AWAITING_MAX_LIMIT = 200
#: The fields of an issue in POST /beads (and, without `convoy`, of each of POST /convoys).
ISSUE_FIELDS = frozenset(
    {"title", "body", "priority", "labels", "rig", "convoy", "blocks", "blocked_by"}
)


def _actor(token: ApiToken) -> Actor:
    return Actor(f"api:{token.name}")


def _town(token: ApiToken | None) -> Town:
    assert token is not None
    return token.town


def _agent(token: ApiToken | None, name: str) -> Agent:
    agent = (
        Agent.objects.select_related("town", "rig")
        .filter(town=_town(token), name=clean_path_text(name))
        .first()
    )
    if agent is None:
        not_found(f"No agent named {name!r} in this town.", "name")
    return agent


def _rig(town: Town, name: str, field: str) -> Rig:
    rig = Rig.objects.filter(town=town, name=name).first()
    if rig is None:
        not_found(f"No rig named {name!r} in this town.", field)
    return rig


def _only_rig(town: Town, field: str) -> Rig:
    """The rig a bead or convoy belongs to when none is named: the town's only one."""
    rigs = list(Rig.objects.filter(town=town)[:2])
    if len(rigs) != 1:
        bad_request(
            "Name the rig (repository): "
            + ("this town has several." if rigs else "this town has no rig yet."),
            field,
        )
    return rigs[0]


def _bead(town: Town, bead_id: int, field: str) -> Bead:
    bead = (
        Bead.objects.select_related("town", "rig", "convoy").filter(town=town, pk=bead_id).first()
    )
    if bead is None:
        not_found(f"No bead {bead_id} in this town.", field)
    return bead


def _refused(exc: ReportRefused) -> ApiError:
    status = 400 if isinstance(exc, ReportInvalid) else 409
    return ApiError(status, exc.message, exc.field or None)


# --- beads and convoys --------------------------------------------------------------------


def _create_issue(
    *,
    town: Town,
    data: Any,
    actor: Actor,
    prefix: str = "",
    convoy: Convoy | None = None,
    convoy_rig: Rig | None = None,
) -> Bead:
    if not isinstance(data, dict):
        bad_request(f"{prefix.rstrip('.') or 'body'} must be a JSON object.", prefix.rstrip("."))
    refuse_unknown(data, ISSUE_FIELDS - ({"convoy"} if convoy else set()), prefix=prefix)
    title = get_str(data, "title", required=True, prefix=prefix)
    body = get_str(data, "body", max_length=100_000, prefix=prefix)
    priority = get_choice(data, "priority", Priority.values, default=Priority.MEDIUM, prefix=prefix)
    labels = get_list(data, "labels", max_items=MAX_LABELS, prefix=prefix)
    for i, label in enumerate(labels):
        field = f"{prefix}labels[{i}]"
        if not isinstance(label, str) or not label.strip() or len(label) > 50:
            bad_request("Each label must be a non-empty string of up to 50 characters.", field)
    rig_name = get_str(data, "rig", max_length=100, prefix=prefix)
    rig = _rig(town, rig_name, prefix + "rig") if rig_name else convoy_rig
    if convoy is None and (convoy_id := get_id(data, "convoy", prefix=prefix)):
        convoy = Convoy.objects.select_related("rig").filter(town=town, pk=convoy_id).first()
        if convoy is None:
            not_found(f"No convoy {convoy_id} in this town.", prefix + "convoy")
        rig = rig or convoy.rig
    if rig is None:
        # B1 dispatches only beads of a rig (the repository the polecat works in).
        rig = _only_rig(town, prefix + "rig")
    if convoy is not None:
        field, problem = bead_convoy_problem(convoy=convoy, rig=rig, town_id=town.pk)
        if problem:
            bad_request(problem, prefix + field)
    links: dict[str, list[Bead]] = {}
    for field in ("blocks", "blocked_by"):
        links[field] = []
        for i, value in enumerate(get_list(data, field, max_items=MAX_LINKS, prefix=prefix)):
            other = _bead(town, as_id(value, f"{prefix}{field}[{i}]"), f"{prefix}{field}[{i}]")
            if other.is_terminal:
                bad_request(f"Bead {other.pk} is {other.status}.", f"{prefix}{field}[{i}]")
            if other.type != BeadType.ISSUE:
                bad_request(
                    f"Bead {other.pk} is a {other.type} bead; issues depend only on issues.",
                    f"{prefix}{field}[{i}]",
                )
            links[field].append(other)
    _refuse_cycle(town, links["blocks"], links["blocked_by"], prefix)
    bead = bead_create(
        town=town,
        rig=rig,
        convoy=convoy,
        type=BeadType.ISSUE,
        title=title,
        body=body,
        priority=priority,
        labels=[label.strip() for label in labels],
        actor=actor,
        note="Created through the API.",
    )
    for dependent in links["blocks"]:
        bead_add_dependency(bead=dependent, blocker=bead)
    for blocker in links["blocked_by"]:
        bead_add_dependency(bead=bead, blocker=blocker)
    return bead


def _refuse_cycle(town: Town, blocks: list[Bead], blocked_by: list[Bead], prefix: str) -> None:
    """The new bead would wait for `blocked_by` and `blocks` would wait for it: if one of
    `blocks` is (or is already awaited by) a `blocked_by` bead, none of them could start."""
    cycle = dependency_cycle(
        town_id=town.pk, waiters=[b.pk for b in blocks], blockers=[b.pk for b in blocked_by]
    )
    if cycle is None:
        return
    why = (
        "it is also in blocked_by"
        if cycle in {b.pk for b in blocked_by}
        else "a bead in blocked_by already waits for it, directly or through others"
    )
    bad_request(
        f"Bead {cycle} cannot wait for this bead: {why}, so none of them could ever start "
        "(a dependency cycle).",
        f"{prefix}blocks[{[b.pk for b in blocks].index(cycle)}]",
    )


@api_endpoint("POST", body_required=True)
def beads_create(request: HttpRequest, token: ApiToken, data: dict[str, Any]) -> JsonResponse:
    bead = _create_issue(town=token.town, data=data, actor=_actor(token))
    return JsonResponse(bead_json(bead), status=201)


@api_endpoint("POST", body_required=True)
def convoys_create(request: HttpRequest, token: ApiToken, data: dict[str, Any]) -> JsonResponse:
    town = token.town
    refuse_unknown(data, frozenset({"title", "rig", "merge_mode", "beads"}))
    title = get_str(data, "title", required=True)
    merge_mode = get_choice(data, "merge_mode", MergeMode.values, default=town.default_merge_mode)
    rig_name = get_str(data, "rig", max_length=100)
    rig = _rig(town, rig_name, "rig") if rig_name else None
    if merge_mode == MergeMode.REVIEW_THEN_LAND and rig is None:
        # The feature branch lives in one repository: the named rig, else the town's only
        # one (as for a bead).
        rig = _only_rig(town, "rig")
    items = get_list(data, "beads", max_items=MAX_CONVOY_BEADS)
    try:
        convoy = convoy_create(
            town=town, title=title, merge_mode=merge_mode, rig=rig, actor=_actor(token)
        )
    except ValueError as error:
        bad_request(str(error), "rig")
    beads = [
        _create_issue(
            town=town,
            data=item,
            actor=_actor(token),
            prefix=f"beads[{i}].",
            convoy=convoy,
            convoy_rig=rig,
        )
        for i, item in enumerate(items)
    ]
    return JsonResponse(convoy_json(convoy, beads), status=201)


# --- agent reports ------------------------------------------------------------------------


@api_endpoint("GET")
def agent_assignment(request: HttpRequest, token: ApiToken, data: Any, name: str) -> JsonResponse:
    agent = _agent(token, name)
    bead = agent_fetch_assignment(agent=agent)
    payload: dict[str, Any] = {"agent": agent_json(agent), "assignment": None}
    if bead is not None:
        payload["assignment"] = bead_json(bead)
        mr = MergeRequest.objects.select_related("bead", "bead__rig").filter(bead=bead).first()
        payload["merge_request"] = merge_request_json(mr) if mr else None
    return JsonResponse(payload)


@api_endpoint("POST")
def agent_heartbeat_view(
    request: HttpRequest, token: ApiToken, data: Any, name: str
) -> JsonResponse:
    refuse_unknown(data, frozenset())
    agent = agent_heartbeat(agent=_agent(token, name))
    return JsonResponse({"agent": agent_json(agent)})


@api_endpoint("POST", body_required=True)
def agent_done(
    request: HttpRequest, token: ApiToken, data: dict[str, Any], name: str
) -> JsonResponse:
    refuse_unknown(data, frozenset({"bead", "branch", "pr_url"}))
    agent = _agent(token, name)
    bead_id = get_id(data, "bead", required=True)
    branch = get_str(data, "branch", required=True, max_length=200, strip=False)
    pr_url = get_str(data, "pr_url", max_length=500, strip=False)
    if pr_url:
        try:
            parse_pr_url(pr_url)
        except ScmError as exc:
            bad_request(exc.message, "pr_url")
    bead = _bead(agent.town, bead_id, "bead")
    try:
        mr = agent_report_done(agent=agent, bead=bead, branch=branch, pr_url=pr_url)
    except ReportRefused as exc:
        raise _refused(exc) from None
    # A rework bead reports into its existing MR, whose source is the original issue.
    created = mr.source_id == bead.pk
    mr = MergeRequest.objects.select_related("bead", "bead__rig").get(pk=mr.pk)
    return JsonResponse({"merge_request": merge_request_json(mr)}, status=201 if created else 200)


@api_endpoint("POST", body_required=True)
def agent_failure(
    request: HttpRequest, token: ApiToken, data: dict[str, Any], name: str
) -> JsonResponse:
    refuse_unknown(data, frozenset({"bead", "message"}))
    agent = _agent(token, name)
    bead_id = get_id(data, "bead", required=True)
    message = get_str(data, "message", required=True, max_length=10_000)
    bead = _bead(agent.town, bead_id, "bead")
    try:
        bead = agent_report_failure(agent=agent, bead=bead, message=message)
    except ReportRefused as exc:
        raise _refused(exc) from None
    return JsonResponse({"bead": bead_json(bead)})


@api_endpoint("POST", body_required=True)
def agent_review(
    request: HttpRequest, token: ApiToken, data: dict[str, Any], name: str
) -> JsonResponse:
    refuse_unknown(data, frozenset({"merge_request", "passed", "summary"}))
    agent = _agent(token, name)
    mr_id = get_id(data, "merge_request", required=True)
    passed = get_bool(data, "passed", required=True)
    summary = get_str(data, "summary", max_length=10_000)
    mr = (
        MergeRequest.objects.select_related("bead", "bead__rig", "bead__town")
        .filter(pk=mr_id, bead__town=agent.town)
        .first()
    )
    if mr is None:
        not_found(f"No merge request {mr_id} in this town.", "merge_request")
    try:
        mr = refinery_report_review(agent=agent, merge_request=mr, passed=passed, summary=summary)
    except ReportRefused as exc:
        raise _refused(exc) from None
    return JsonResponse({"merge_request": merge_request_json(mr)})


# --- reads --------------------------------------------------------------------------------


@api_endpoint("GET", query=("limit",))
def awaiting_approval(request: HttpRequest, token: ApiToken, data: Any) -> JsonResponse:
    """MRs waiting on a human, oldest wait first; at most `limit` (bounded queries)."""
    limit = AWAITING_DEFAULT_LIMIT
    if "limit" in request.GET:
        # Present means an integer, as the document says: `limit=` is no way to ask for the
        # default (leave the parameter out).
        raw = request.GET["limit"]
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= AWAITING_MAX_LIMIT):
            bad_request(f"limit must be an integer from 1 to {AWAITING_MAX_LIMIT}.", "limit")
        limit = int(raw)
    mrs = awaiting_approval_list(town=token.town)
    rows = list(mrs[: limit + 1])
    return JsonResponse(
        {
            "results": [merge_request_json(mr) for mr in rows[:limit]],
            "truncated": len(rows) > limit,
        }
    )
