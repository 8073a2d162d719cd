"""Act as the human reviewer on the fake GitHub, through its control API."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scm.errors import ScmError
from scm.fake.remote import fake_control, fake_root_url
from scm.urls import parse_pr_url


def _default_fake_url() -> str:
    # The demo's own shell exports GITHUB_API_URL; a second terminal usually has only the port.
    port = os.environ.get("FAKE_GITHUB_PORT", "8765")
    return fake_root_url() or f"http://127.0.0.1:{port}"


class Command(BaseCommand):
    help = "Approve or request changes on a pull request of a running fake GitHub."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pr", required=True, help="The pull request's URL.")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--approve", action="store_true")
        action.add_argument("--request-changes", action="store_true")
        parser.add_argument("--by", default="alice", help="The reviewer's login.")
        parser.add_argument("--body", default="Please fix this.", help="Comment for changes.")
        parser.add_argument(
            "--fake-url",
            help="The fake's root (default: GITHUB_API_URL when it is on this machine, else "
            "http://127.0.0.1:$FAKE_GITHUB_PORT, port 8765 unless set).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            ref = parse_pr_url(options["pr"])
        except ScmError as error:
            raise CommandError(error.message) from None
        action = "approve" if options["approve"] else "request-changes"
        try:
            state = fake_control(
                f"pulls/{ref.repo}/{ref.number}/{action}",
                {"by": options["by"], "body": options["body"]},
                root=options["fake_url"] or _default_fake_url(),
                timeout=10,
            )
        except ScmError as error:
            raise CommandError(error.message) from None
        self.stdout.write(
            f"{ref}: {action} by {options['by']}; review decision now "
            f"{state.get('review_decision')}, merge state {state.get('merge_state_status')}."
        )
