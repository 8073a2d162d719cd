"""The demo's own override: approve a PR on the fake GitHub (its /_fake/ control API).

Registered into the override catalogue by the demo app (gastown.demo.apps), so the dashboard
offers it only where the demo is installed, and no production module imports the fake.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from beads.models import MergeRequest
from beads.services import merge_request_request_check
from gastown.models import Convoy, TownPermission
from gastown.services.overrides import (
    Override,
    OverrideRefused,
    merge_request_is_watched,
    override_audit,
    pr_display_name,
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
    if mr.bead.is_terminal and not Convoy.objects.filter(suppressed_landing_mr=mr).exists():
        raise OverrideRefused(f"The MR is {mr.bead.status}: nothing to approve.")
    if not (mr.pr_repo and mr.pr_number):
        raise OverrideRefused("This merge request has no pull request yet: nothing to approve.")
    reviewer = (mr.requested_reviewers or ["alice"])[0]
    if not isinstance(reviewer, str) or not reviewer:
        reviewer = "alice"
    try:
        state = fake_control(
            f"pulls/{mr.pr_repo}/{mr.pr_number}/approve", {"by": reviewer}, timeout=timeout
        )
    except ScmError as error:
        raise OverrideRefused(f"The fake GitHub did not approve: {error.message}") from None
    message = (
        f"{pr_display_name(mr)} approved on the fake GitHub as {reviewer}; review decision now "
        f"{state.get('review_decision') or 'unknown'}. It will be re-checked at once."
    )
    with transaction.atomic():
        merge_request_request_check(merge_request=mr, now=now)
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


FAKE_PR_APPROVE = Override(
    "fake_pr_approve",
    "Approve (fake GitHub)",
    "merge_request",
    TownPermission.APPROVE_FAKE_PR,
    "Demo only: approves the PR on the fake GitHub as the requested reviewer, then re-checks it.",
    fake_pr_approve,
    lambda mr: fake_github_enabled() and merge_request_is_watched(mr) and bool(mr.pr_number),
)
