"""Encryption of secrets kept in the database (per-town GitHub tokens).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`, which PyGithub already depends on.
The key is derived from SECRET_KEY, so a database dump alone does not reveal a token.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored ciphertext cannot be decrypted (SECRET_KEY changed, or it was tampered)."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"gastown-secrets:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The stored secret cannot be decrypted; SECRET_KEY may have changed. "
            "Enter the token again."
        ) from None
