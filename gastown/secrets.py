"""Encryption of secrets kept in the database (per-town GitHub tokens).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`, which PyGithub already depends on.
The key is derived from SECRET_KEY, so a database dump alone does not reveal a token.

Key rotation follows Django's own: a new SECRET_KEY with the old one in SECRET_KEY_FALLBACKS
still decrypts what the old key encrypted (MultiFernet tries the current key first, then each
fallback), and `manage.py rotate_secrets` re-encrypts every stored secret with the current key
so the fallback can then be dropped.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import transaction


class SecretUnreadable(Exception):
    """The stored ciphertext cannot be decrypted (SECRET_KEY changed, or it was tampered)."""


def _fernet_for(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"gastown-secrets:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _fernet() -> MultiFernet:
    """Encrypts with SECRET_KEY; decrypts with it, then with each of SECRET_KEY_FALLBACKS."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(key) for key in keys])


def encrypt_secret(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The stored secret cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS; "
            "SECRET_KEY may have changed. Put the old key in SECRET_KEY_FALLBACKS, or enter "
            "the token again."
        ) from None


@dataclass
class RotationSummary:
    rotated: int = 0  # re-encrypted with the current key
    current: int = 0  # already encrypted with the current key
    unreadable: list[str] = field(default_factory=list)  # towns no key decrypts the token of

    def __str__(self) -> str:
        line = (
            f"{self.rotated} secret(s) re-encrypted with the current SECRET_KEY, "
            f"{self.current} already current, {len(self.unreadable)} unreadable"
        )
        if self.unreadable:
            line += f" (towns: {', '.join(self.unreadable)}; enter their tokens again)"
        return line


def secrets_rotate() -> RotationSummary:
    """Re-encrypt every stored secret with the current SECRET_KEY (idempotent: a secret the
    current key already decrypts is left as it is)."""
    from gastown.models import Town

    current = _fernet_for(settings.SECRET_KEY)
    every_key = _fernet()
    summary = RotationSummary()
    with transaction.atomic():
        towns = Town.objects.select_for_update().exclude(github_token_encrypted="").order_by("pk")
        for town in towns.only("pk", "slug", "github_token_encrypted"):
            token = town.github_token_encrypted.encode()
            try:
                current.decrypt(token)
            except InvalidToken:
                pass
            else:
                summary.current += 1
                continue
            try:
                rotated = every_key.rotate(token).decode()
            except InvalidToken:
                summary.unreadable.append(town.slug)
                continue
            Town.objects.filter(pk=town.pk).update(github_token_encrypted=rotated)
            summary.rotated += 1
    return summary
