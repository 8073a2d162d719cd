"""`manage.py check_prs [--town SLUG]`: one feedback pass, the same code the task runs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gastown.feedback.checks import check_prs
from gastown.models import Town


class Command(BaseCommand):
    help = "Check the pull requests that are due (domain.md §4) and auto-merge the ready ones."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--town", metavar="SLUG", help="Only this town (default: all).")

    def handle(self, *args: Any, **options: Any) -> None:
        town_ids = None
        if options["town"]:
            town = Town.objects.filter(slug=options["town"]).first()
            if town is None:
                raise CommandError(f"No town with slug {options['town']!r}.")
            town_ids = [town.pk]
        self.stdout.write(check_prs(town_ids=town_ids).summary())
