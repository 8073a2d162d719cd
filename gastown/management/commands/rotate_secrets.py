"""Re-encrypt every stored secret with the current SECRET_KEY (after a key rotation)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gastown.services.secrets import secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt the secrets stored in the database (per-town GitHub tokens and App keys) "
        "with the current SECRET_KEY. Run it after moving the old key to "
        "SECRET_KEY_FALLBACKS; once it reports nothing unreadable, the fallback can be dropped. "
        "Safe to run again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        summary = secrets_rotate()
        if summary.unreadable:
            raise CommandError(str(summary))
        self.stdout.write(str(summary))
