"""Key rotation of the secrets stored in the database (gastown.secrets encrypts them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import transaction

from gastown.models import Town
from gastown.secrets import fernet_for, fernets


@dataclass
class RotationSummary:
    rotated: int = 0  # re-encrypted with the current key
    current: int = 0  # already encrypted with the current key
    unreadable: list[str] = field(default_factory=list)  # towns no key decrypts a secret of

    def __str__(self) -> str:
        line = (
            f"{self.rotated} secret(s) re-encrypted with the current SECRET_KEY, "
            f"{self.current} already current, {len(self.unreadable)} unreadable"
        )
        if self.unreadable:
            line += f" (towns: {', '.join(self.unreadable)}; enter their token or App key again)"
        return line


#: The encrypted secrets a town may hold: its GitHub token and its GitHub App's private key.
ENCRYPTED_FIELDS = ("github_token_encrypted", "github_app_private_key_encrypted")


def secrets_rotate() -> RotationSummary:
    """Re-encrypt every stored secret with the current SECRET_KEY (idempotent: a secret the
    current key already decrypts is left as it is)."""
    current = fernet_for(settings.SECRET_KEY)
    every_key = fernets()
    summary = RotationSummary()
    with transaction.atomic():
        for name in ENCRYPTED_FIELDS:
            towns = Town.objects.select_for_update().exclude(**{name: ""}).order_by("pk")
            for pk, slug, stored in towns.values_list("pk", "slug", name):
                secret = stored.encode()
                try:
                    current.decrypt(secret)
                except InvalidToken:
                    pass
                else:
                    summary.current += 1
                    continue
                try:
                    rotated = every_key.rotate(secret).decode()
                except InvalidToken:
                    summary.unreadable.append(slug)
                    continue
                Town.objects.filter(pk=pk).update(**{name: rotated})
                summary.rotated += 1
    return summary
