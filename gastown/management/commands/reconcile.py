from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gastown.models import Town
from gastown.reconciler.tick import reconcile_towns


class Command(BaseCommand):
    help = "Run one reconciler tick for every town (or one); the code the scheduled task runs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--town", help="Only this town (its slug).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would be done; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        town_ids = None
        if options["town"]:
            town = Town.objects.filter(slug=options["town"]).first()
            if town is None:
                raise CommandError(f"No town with slug {options['town']!r}.")
            town_ids = [town.pk]
        result = reconcile_towns(town_ids=town_ids, dry_run=options["dry_run"])
        if options["dry_run"] and options["verbosity"] > 1:
            for tick in result.ticks:
                for action in tick.planned:
                    self.stdout.write(f"  [{tick.town.slug}] {action.rule}: {action.describe()}")
        self.stdout.write(result.summary())
