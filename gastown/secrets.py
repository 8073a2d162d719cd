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

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored ciphertext cannot be decrypted (SECRET_KEY changed, or it was tampered)."""


def fernet_for(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"gastown-secrets:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def fernets() -> MultiFernet:
    """Encrypts with SECRET_KEY; decrypts with it, then with each of SECRET_KEY_FALLBACKS."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([fernet_for(key) for key in keys])


def encrypt_secret(plaintext: str) -> str:
    return fernets().encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    try:
        return fernets().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The stored secret cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS; "
            "SECRET_KEY may have changed. Put the old key in SECRET_KEY_FALLBACKS, or enter "
            "the token again."
        ) from None
