"""Create the demo town: two convoys whose work flows through the fake GitHub by itself, one
of them landing through a PR that waits for a human approval."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from beads.audit import Actor
from beads.models import Priority
from beads.services import bead_add_dependency, bead_create
from gastown.management.commands.create_team_lead_group import team_lead_group_sync
from gastown.models import Convoy, MergeMode, Rig, Town

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
        self.stdout.write(f"Demo town {town.name!r} created with {len(CONVOYS)} convoys.")
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
            convoy = Convoy.objects.create(
                town=town,
                rig=rig,
                title=convoy_title,
                merge_mode=merge_mode,
                created_by=actor.label,
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
