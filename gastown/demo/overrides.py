"""The demo's own override: approve a PR on the fake GitHub (its /_fake/ control API).

Registered into the override catalogue by the demo app (gastown.demo.apps), so the dashboard
offers it only where the demo is installed, and no production module imports the fake.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from beads.merge_requests import merge_request_refusal
from beads.models import MergeRequest
from beads.services import merge_request_request_check
from gastown.models import TownPermission
from gastown.services.overrides import (
    Override,
    OverrideRefused,
    override_audit,
    override_check_at_once,
)
from scm.errors import ScmError
from scm.fake.remote import fake_control, fake_root_url


def fake_github_enabled() -> bool:
    return fake_root_url() is not None


def fake_pr_approve(
    *,
    merge_request: MergeRequest,
    user: Any,
    reason: str = "",
    now: datetime | None = None,
    timeout: float = 5.0,
) -> str:
    """Approve the PR on the fake GitHub as a reviewer, then make the MR due so the approval
    is noticed at once."""
    mr = merge_request
    now = now or timezone.now()
    if fake_root_url() is None:
        raise OverrideRefused("Approving on GitHub is only for the demo's fake GitHub.")
    refusal = merge_request_refusal(merge_request=mr, transition="recheck")
    if refusal:
        raise OverrideRefused(refusal)
    ref = mr.pr_ref
    if ref is None:
        raise OverrideRefused("This merge request has no pull request yet: nothing to approve.")
    reviewer = (mr.requested_reviewers or ["alice"])[0]
    if not isinstance(reviewer, str) or not reviewer:
        reviewer = "alice"
    try:
        state = fake_control(
            f"pulls/{ref.repo}/{ref.number}/approve", {"by": reviewer}, timeout=timeout
        )
    except ScmError as error:
        raise OverrideRefused(f"The fake GitHub did not approve: {error.message}") from None
    message = (
        f"{mr.pr_name} approved on the fake GitHub as {reviewer}; review decision now "
        f"{state.get('review_decision') or 'unknown'}. It is being checked now."
    )
    with transaction.atomic():
        merge_request_request_check(merge_request=mr, now=now)
        override_check_at_once(mr.bead.town_id)
        override_audit(
            name="fake_pr_approve",
            town=mr.bead.town,
            user=user,
            reason=reason,
            message=message,
            bead=mr.bead,
            data={"pr_url": mr.pr_url, "reviewer": reviewer},
        )
    return message


def _recheck_refusal(mr: MergeRequest) -> str:
    return merge_request_refusal(merge_request=mr, transition="recheck")


FAKE_PR_APPROVE = Override(
    "fake_pr_approve",
    "Approve (fake GitHub)",
    "merge_request",
    TownPermission.APPROVE_FAKE_PR,
    "Demo only: approves the PR on the fake GitHub as the requested reviewer, then re-checks it.",
    fake_pr_approve,
    lambda mr: fake_github_enabled() and not _recheck_refusal(mr),
    refusal=lambda mr: (
        ("" if fake_github_enabled() else "Only for the demo's fake GitHub.")
        or _recheck_refusal(mr)
    ),
)
