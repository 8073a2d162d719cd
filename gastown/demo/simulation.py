"""A small built-in agent runtime for the demo (GASTOWN_SIMULATED_AGENTS=1).

It answers dispatches the way real agents would, through the same services the HTTP API
calls: a polecat pushes a branch and opens a PR on the fake GitHub, CI goes green, and it
reports done; the refinery reviews and passes the MR. It runs in the worker right after the
dispatch committed.
"""

from __future__ import annotations

import logging

from django.utils.text import slugify

from beads.models import Bead, BeadType, MergeRequest, bead_ref
from gastown.models import Agent, AgentRole
from gastown.services.github import github_client_for
from gastown.services.reports import (
    ReportRefused,
    agent_fetch_assignment,
    agent_report_done,
    agent_report_failure,
    refinery_report_review,
)
from scm.errors import ScmError
from scm.fake.remote import fake_control

log = logging.getLogger(__name__)


def simulate_dispatch(*, agent_id: int, bead_id: int) -> None:
    agent = Agent.objects.select_related("town", "rig").get(pk=agent_id)
    bead = Bead.objects.select_related("rig", "convoy", "town").get(pk=bead_id)
    try:
        agent_fetch_assignment(agent=agent)
        if agent.role == AgentRole.REFINERY and bead.type == BeadType.MERGE_REQUEST:
            mr = MergeRequest.objects.select_related("bead").get(bead=bead)
            if mr.pr_number:  # the repository's CI runs on every PR, the landing PR included
                fake_control(f"pulls/{mr.pr_repo}/{mr.pr_number}/checks", {"name": "ci"})
            refinery_report_review(
                agent=agent,
                merge_request=mr,
                passed=True,
                summary="Looks good to me (simulated refinery).",
            )
        elif agent.role == AgentRole.POLECAT and bead.type == BeadType.ISSUE:
            _polecat_work(agent, bead)
    except (ReportRefused, ScmError) as error:
        log.warning("simulated %s could not finish bead %s: %s", agent.name, bead.pk, error)


def _polecat_work(agent: Agent, bead: Bead) -> None:
    assert bead.rig is not None
    metadata_branch = bead.metadata.get("branch")
    if metadata_branch:  # rework: the fix goes to the existing MR's branch
        agent_report_done(agent=agent, bead=bead, branch=metadata_branch)
        return
    target = bead.convoy.feature_branch if bead.convoy and bead.convoy.feature_branch else ""
    target = target or bead.rig.default_branch
    branch = f"polecat/{bead.pk}-{slugify(bead.title)[:40]}"
    client = github_client_for(agent.town)
    try:
        client.create_branch(bead.rig.repo, branch=branch, from_branch=target)
        ref = client.open_pull_request(
            bead.rig.repo,
            head=branch,
            base=target,
            title=bead.title,
            body=f"{bead.body}\n\nSimulated work by {agent.name} for {bead_ref(bead.pk)}.",
        )
        fake_control(f"pulls/{ref.repo}/{ref.number}/checks", {"name": "ci"})
    except ScmError as error:
        agent_report_failure(agent=agent, bead=bead, message=f"could not open a PR: {error}")
        return
    agent_report_done(agent=agent, bead=bead, branch=branch, pr_url=ref.url)
