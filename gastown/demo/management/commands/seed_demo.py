"""Create the demo town: two convoys whose work flows through the fake GitHub by itself, one
of them landing through a PR that waits for a human approval, and (with a running fake
GitHub) a third convoy whose landing MR an old tool already failed while its PR waited for a
reviewer: the reconciler suppresses the respawn instead of looping."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from beads.audit import Actor
from beads.merge_requests import merge_request_transition, merge_request_write
from beads.models import BeadStatus, Blocker, Priority
from beads.services import (
    bead_add_dependency,
    bead_create,
    bead_set_status,
    merge_request_create,
)
from gastown.management.commands.create_team_lead_group import team_lead_group_sync
from gastown.models import Convoy, ConvoyStatus, MergeMode, Rig, Town
from gastown.services.convoys import (
    convoy_create,
    convoy_feature_branch_created,
    convoy_transition,
)
from gastown.services.github import github_client_for
from gastown.services.merge_requests import wait_began_event
from scm.errors import ScmError
from scm.fake.remote import fake_control

DEMO_SLUG = "demo"
DEMO_REPO = "demo/app"

CONVOYS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Faster sign-in",
        MergeMode.REVIEW_AND_MERGE,
        [
            ("Cache the session lookup", Priority.HIGH),
            ("Drop the second redirect after login", Priority.MEDIUM),
        ],
    ),
    (
        "Billing v2",
        MergeMode.REVIEW_THEN_LAND,
        [
            ("Add the invoices table", Priority.HIGH),
            ("Send invoice e-mails", Priority.MEDIUM),
            ("Show invoices on the account page", Priority.MEDIUM),
        ],
    ),
]


class Command(BaseCommand):
    help = "Create (or with --reset, recreate) the demo town and its users."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reset", action="store_true", help="Delete the demo town first.")
        parser.add_argument(
            "--no-github",
            action="store_true",
            help="Skip the convoy that needs the fake GitHub (its PR is created there).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            if options["reset"]:
                Convoy.objects.filter(town__slug=DEMO_SLUG).delete()
                Town.objects.filter(slug=DEMO_SLUG).delete()
            if Town.objects.filter(slug=DEMO_SLUG).exists():
                self.stdout.write("The demo town exists; use --reset to recreate it.")
                return
            town = self._town()
            passwords = self._users(town)
        convoys = len(CONVOYS)
        if not options["no_github"]:
            try:
                self._suppressed_landing(town)
                convoys += 1
            except ScmError as error:
                self.stderr.write(f"Skipped the suppressed-landing convoy: {error.message}")
        self.stdout.write(f"Demo town {town.name!r} created with {convoys} convoys.")
        for username, password in passwords.items():
            self.stdout.write(f"  login: {username} / {password}")

    def _town(self) -> Town:
        town = Town.objects.create(
            slug=DEMO_SLUG,
            name="Demo Town",
            auto_merge=True,
            auto_merge_delay_minutes=0,
            poll_interval_seconds=10,
            code_review=True,
            default_merge_mode=MergeMode.REVIEW_THEN_LAND,
        )
        rig = Rig.objects.create(town=town, name="app", repo=DEMO_REPO, default_branch="main")
        actor = Actor("user:demo-seed")
        for convoy_title, merge_mode, bead_specs in CONVOYS:
            convoy = convoy_create(
                town=town, rig=rig, title=convoy_title, merge_mode=merge_mode, actor=actor
            )
            previous = None
            for title, priority in bead_specs:
                bead = bead_create(
                    town=town,
                    rig=rig,
                    convoy=convoy,
                    title=title,
                    priority=priority,
                    body=f"Part of the convoy {convoy.title!r}.",
                    actor=actor,
                )
                if previous is not None and convoy.merge_mode == MergeMode.REVIEW_THEN_LAND:
                    bead_add_dependency(bead=bead, blocker=previous)
                previous = bead
        return town

    def _suppressed_landing(self, town: Town) -> None:
        """A convoy whose work is done and whose landing PR waits for approval; a naive timeout
        (not gastown) failed its landing MR. The PR is real, on the fake GitHub."""
        rig = town.rigs.get()
        actor = Actor("user:demo-seed")
        convoy = convoy_create(
            town=town,
            rig=rig,
            title="Search revamp",
            merge_mode=MergeMode.REVIEW_THEN_LAND,
            actor=actor,
        )
        client = github_client_for(town)
        client.create_branch(rig.repo, branch=convoy.feature_branch, from_branch="main")
        ref = client.open_pull_request(
            rig.repo, head=convoy.feature_branch, base="main", title="Land convoy: Search revamp"
        )
        fake_control(f"pulls/{ref.repo}/{ref.number}/checks", {"name": "ci"})
        now = timezone.now()
        for title in ("Index titles and bodies", "Rank exact matches first"):
            bead = bead_create(town=town, rig=rig, convoy=convoy, title=title, actor=actor)
            bead_set_status(bead=bead, status=BeadStatus.CLOSED, actor=actor)
        convoy_feature_branch_created(convoy=convoy, now=now)
        convoy_transition(
            convoy=convoy, to=ConvoyStatus.READY_TO_LAND, now=now, note="every bead is closed"
        )
        convoy_transition(
            convoy=convoy,
            to=ConvoyStatus.LANDING,
            now=now,
            note="landing MR created (attempt 1)",
            landing_attempts=1,
            last_landing_attempt_at=now,
        )
        mr = merge_request_create(
            town=town,
            rig=rig,
            title="Land convoy: Search revamp",
            branch=convoy.feature_branch,
            target_branch="main",
            actor=actor,
            landing_convoy=convoy,
            pr_url=ref.url,
        )
        # What a first check would have stored: the PR waits on alice.
        merge_request_write(
            merge_request=mr,
            now=now,
            pr_state="OPEN",
            review_decision="REVIEW_REQUIRED",
            merge_state_status="BLOCKED",
            checks_state="passing",
            requested_reviewers=["alice"],  # the repository's code owner
            blocker=Blocker.HUMAN_REVIEW,
            waiting_since=now,
            snapshot_at=now,
            last_checked_at=now,
            review_status="passed",
        )
        # ... and the wait's telemetry it would have written, so the Telemetry page's count
        # of waits matches Awaiting approval's list.
        wait_began_event(mr, now=now).save()
        merge_request_transition(
            merge_request=mr,
            transition="fail",
            actor=Actor("user:legacy-timeout-bot"),
            failure_code="timed_out",
            failure_message="No merge after 30 minutes.",
        )

    def _users(self, town: Town) -> dict[str, str]:
        User = get_user_model()
        group, _ = team_lead_group_sync()
        passwords = {}
        for username, superuser in (("admin", True), ("lead", False)):
            password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(9)
            user = User.objects.filter(username=username).first() or User(username=username)
            user.is_staff = True
            user.is_superuser = superuser
            user.set_password(password)
            user.save()
            if not superuser:
                user.groups.add(group)
                town.member_users.add(user)
            passwords[username] = password
        return passwords
