"""Strict readers for environment variables.

Every reader names the variable in its error, so a typo in a deployment stops start-up with a
message that says what to fix instead of surfacing later as an odd behaviour.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ImproperlyConfiguredEnv(Exception):
    """A malformed environment variable; the message names it."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfiguredEnv(
        f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfiguredEnv(f"{name}={value} must be at least {minimum}.")
    return value


def env_github_app(id_name: str, key_name: str) -> tuple[str, str]:
    """A GitHub App's id and private key (PEM), both or neither. The key may come with its
    line breaks written as \\n (one-line environment files)."""
    app_id = os.environ.get(id_name, "").strip()
    key = os.environ.get(key_name, "").strip().replace("\\n", "\n")
    if not app_id and not key:
        return "", ""
    if not app_id or not key:
        missing, given = (id_name, key_name) if key else (key_name, id_name)
        raise ImproperlyConfiguredEnv(f"{given} is set but {missing} is not: set both or neither.")
    if not app_id.isdigit():
        raise ImproperlyConfiguredEnv(f"{id_name}={app_id!r} is not a GitHub App id (a number).")
    if "-----BEGIN" not in key or "PRIVATE KEY-----" not in key:
        raise ImproperlyConfiguredEnv(
            f"{key_name} is not a PEM private key (-----BEGIN RSA PRIVATE KEY----- ...)."
        )
    return app_id, key


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, read case-insensitively and returned as spelled in `choices`."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    for choice in choices:
        if raw.strip().lower() == choice.lower():
            return choice
    raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not one of {', '.join(choices)}.")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """An absolute URL without a trailing slash."""
    raw = os.environ.get(name, default).strip()
    try:
        parts = _split_url(raw)
    except ValueError as error:
        raise ImproperlyConfiguredEnv(
            f"{name}={raw!r} is not a valid URL ({error}; for example {default!r})."
        ) from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ImproperlyConfiguredEnv(
            f"{name}={raw!r} is not an absolute {'/'.join(schemes)} URL (for example {default!r})."
        )
    return raw.rstrip("/")


def env_origins(name: str) -> list[str]:
    """Comma-separated origins (scheme://host[:port], no path), as CSRF_TRUSTED_ORIGINS wants
    them; `https://*.example.com` allows the subdomains."""
    origins = []
    for item in env_list(name, []):
        try:
            parts = _split_url(item)
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ImproperlyConfiguredEnv(
                f"{name} has {item!r}, which is not an origin; use scheme://host[:port], "
                "for example https://gastown.example.com."
            )
        origins.append(item.rstrip("/"))
    return origins


_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """`Header-Name` or `Header-Name: value` (value `https` when left out): the request header
    a TLS-terminating proxy sets, as Django's SECURE_PROXY_SSL_HEADER (`HTTP_HEADER_NAME`,
    value); empty means no proxy is trusted."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    header, _, value = raw.partition(":")
    header, value = header.strip(), value.strip() or "https"
    if not _HEADER_NAME.match(header):
        raise ImproperlyConfiguredEnv(
            f"{name}={raw!r} is not a header name; use for example X-Forwarded-Proto (or "
            "X-Forwarded-Proto: https)."
        )
    return "HTTP_" + header.upper().replace("-", "_"), value


def env_bind(name: str, default: str) -> str:
    """A gunicorn bind address: HOST:PORT, [IPv6]:PORT or unix:/path."""
    raw = os.environ.get(name, "").strip() or default
    if raw.startswith("unix:") and len(raw) > len("unix:"):
        return raw
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ImproperlyConfiguredEnv(
            f"{name}={raw!r} is not a bind address; use HOST:PORT (127.0.0.1:8000, "
            "[::1]:8000, 0.0.0.0:8000) or unix:/path/to/socket."
        )
    return raw


def env_redis_url(name: str, default: str) -> str:
    """redis://[:password@]host[:port][/db] or rediss:// (TLS). The error never repeats the
    value: it may hold a password."""
    raw = os.environ.get(name, "").strip() or default
    try:
        parts = _split_url(raw)
        db = parts.path.strip("/")
        valid = parts.scheme in ("redis", "rediss") and parts.hostname and (not db or db.isdigit())
    except ValueError:
        valid = False
    if not valid:
        raise ImproperlyConfiguredEnv(
            f"{name} is not a Redis URL; use redis://host:6379/0 (rediss:// for TLS, "
            "redis://:password@host:6379/0 with a password)."
        )
    return raw


def _split_url(raw: str) -> SplitResult:
    """urlsplit, also raising ValueError for a port that is not a number or out of range
    (urlsplit itself only checks brackets; `.port` checks the port)."""
    parts = urlsplit(raw)
    parts.port  # noqa: B018
    return parts


@dataclass(frozen=True)
class _Engine:
    backend: str
    default_port: int | None


_ENGINES = {
    "sqlite": _Engine("django.db.backends.sqlite3", None),
    "postgres": _Engine("django.db.backends.postgresql", 5432),
    "postgresql": _Engine("django.db.backends.postgresql", 5432),
}


def sqlite_options() -> dict[str, Any]:
    # A web server and a django-q2 worker share the file: WAL lets readers run beside the
    # writer, the busy timeout waits for a lock instead of raising "database is locked", and
    # IMMEDIATE transactions take the write lock up front so a read-then-write transaction
    # never fails half-way on lock upgrade.
    return {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }


def env_database(name: str, default_sqlite_path: Path) -> dict[str, Any]:
    """Parse DATABASE_URL (sqlite:///path or postgres://user:pass@host:port/db)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {
            "ENGINE": _ENGINES["sqlite"].backend,
            "NAME": str(default_sqlite_path),
            "OPTIONS": sqlite_options(),
        }
    try:
        parts = _split_url(raw)
    except ValueError as error:
        # Not the URL itself: it may hold a password.
        raise ImproperlyConfiguredEnv(
            f"{name} is not a valid URL ({error}); use sqlite:///path/to/db.sqlite3 or "
            "postgres://user@host:5432/dbname."
        ) from None
    engine = _ENGINES.get(parts.scheme)
    if engine is None:
        raise ImproperlyConfiguredEnv(
            f"{name} has an unsupported scheme {parts.scheme!r}; "
            "use sqlite:///path/to/db.sqlite3 or postgres://user@host:5432/dbname."
        )
    if engine.backend.endswith("sqlite3"):
        path = unquote(parts.path)
        if parts.netloc or not path or path == "/":
            raise ImproperlyConfiguredEnv(
                f"{name}={raw!r} is not a SQLite URL; use sqlite:////absolute/path.sqlite3 "
                "or sqlite:///relative/path.sqlite3."
            )
        # sqlite:///rel gives "/rel" (relative), sqlite:////abs gives "//abs" (absolute).
        return {"ENGINE": engine.backend, "NAME": path[1:], "OPTIONS": sqlite_options()}
    db_name = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not db_name:
        raise ImproperlyConfiguredEnv(
            f"{name} must name a host and a database, like postgres://user@127.0.0.1:5432/db."
        )
    port = parts.port or engine.default_port
    options = dict(parse_qsl(parts.query))
    return {
        "ENGINE": engine.backend,
        "NAME": db_name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname,
        "PORT": str(port) if port else "",
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
        "TEST": {"NAME": f"test_{db_name}"},
    }
