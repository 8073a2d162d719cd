"""Create a per-town API token for an agent runtime; the token is printed once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gastown.api.auth import TokenNameTaken, api_token_create
from gastown.models import Town


class Command(BaseCommand):
    help = "Create an API token for a town. The token is printed once and stored hashed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--town", required=True, help="The town's slug.")
        parser.add_argument("--name", required=True, help="Who uses it, e.g. agent-runtime.")

    def handle(self, *args: Any, **options: Any) -> None:
        town = Town.objects.filter(slug=options["town"]).first()
        if town is None:
            raise CommandError(f"No town with slug {options['town']!r}.")
        try:
            row, token = api_token_create(town=town, name=options["name"])
        except (TokenNameTaken, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"Token {row.name!r} for town {town.slug} created; it is shown only now. "
            "Send it as 'Authorization: Bearer <token>'."
        )
        self.stdout.write(token)
