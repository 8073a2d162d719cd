"""Per-town API tokens: `Authorization: Bearer <token>`.

A token is shown once when it is created; only its SHA-256 is stored. Its first characters
(`prefix`) find the row, and the hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from gastown.models import ApiToken, Town

TOKEN_MARK = "gt_"
PREFIX_LENGTH = 12
_TOKEN_SHAPE = re.compile(r"^gt_[A-Za-z0-9_-]{20,100}$")
#: last_used_at is refreshed at most this often, so a heartbeat every few seconds does not
#: turn every request into a write of the token row.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenNameTaken(Exception):
    pass


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, town: Town, name: str, created_by: Any = None) -> tuple[ApiToken, str]:
    """Create a token for `town`; returns the row and the plain token (shown once)."""
    name = name.strip()
    if not name:
        raise ValueError("Name the token (who uses it).")
    with transaction.atomic():
        if ApiToken.objects.filter(town=town, name=name).exists():
            raise TokenNameTaken(f"Town {town.slug} already has a token named {name!r}.")
        token = TOKEN_MARK + secrets.token_urlsafe(32)
        row = ApiToken.objects.create(
            town=town,
            name=name,
            prefix=token[:PREFIX_LENGTH],
            token_hash=_hash(token),
            created_by=created_by,
        )
    return row, token


def api_token_revoke(*, token: ApiToken, now: datetime | None = None) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = now or timezone.now()
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=token.revoked_at)
    return token


def api_token_authenticate(raw: str, *, now: datetime | None = None) -> ApiToken | None:
    """The active token for `raw`, or None. Marks it used."""
    if not _TOKEN_SHAPE.fullmatch(raw):
        return None
    row = (
        ApiToken.objects.select_related("town")
        .filter(prefix=raw[:PREFIX_LENGTH], revoked_at__isnull=True)
        .first()
    )
    if row is None or not hmac.compare_digest(row.token_hash, _hash(raw)):
        return None
    now = now or timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row


def bearer_token(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return value.strip()
