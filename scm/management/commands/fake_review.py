"""Act as the human reviewer on the fake GitHub, through its control API."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scm.errors import ScmError
from scm.fake.remote import fake_control
from scm.urls import parse_pr_url


class Command(BaseCommand):
    help = "Approve or request changes on a pull request of a running fake GitHub."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pr", required=True, help="The pull request's URL.")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--approve", action="store_true")
        action.add_argument("--request-changes", action="store_true")
        parser.add_argument("--by", default="alice", help="The reviewer's login.")
        parser.add_argument("--body", default="Please fix this.", help="Comment for changes.")
        parser.add_argument("--fake-url", default="http://127.0.0.1:8765")

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
                root=options["fake_url"],
                timeout=10,
            )
        except ScmError as error:
            raise CommandError(error.message) from None
        self.stdout.write(
            f"{ref}: {action} by {options['by']}; review decision now "
            f"{state.get('review_decision')}, merge state {state.get('merge_state_status')}."
        )
