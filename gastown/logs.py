"""Logs: one line per event (key=value or JSON, LOG_FORMAT), with the town, bead, PR and tick
they concern, and never a secret.

The reconciler tick and the feedback check set what they work on with `log_context(...)`, a
contextvar, so a log call deep inside (a skipped action, a failed side effect) carries it
without passing it down; `ContextFilter` copies it onto every record. `RedactFilter` replaces
token-like values (GitHub tokens, bearer credentials, our API tokens) and the configured
secrets in the message and the traceback before any handler formats them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

CONTEXT_FIELDS = ("town", "bead", "pr", "tick")

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "gastown_log_context", default=MappingProxyType({})
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block, log records carry these fields (None leaves a field as it was)."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def mr_log_context(mr: Any) -> contextlib.AbstractContextManager[None]:
    """Records about a merge request carry its bead and its PR."""
    return log_context(bead=mr.bead_id, pr=mr.pr_url or None)


class ContextFilter(logging.Filter):
    """Adds town, bead, pr and tick to each record (None where unknown); a value passed with
    `extra=` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True


REDACTED = "[redacted]"
# GitHub's token formats (https://github.blog/engineering/platform-security/behind-githubs-new-authentication-token-formats/),
# any bearer credential, and gastown's API tokens (gt_ + 43 url-safe characters).
TOKEN_PATTERN = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,}|gt_[A-Za-z0-9_-]{20,})"
    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]+|(?<=token )[A-Za-z0-9._~+/=-]{16,}",
    re.IGNORECASE,
)
#: Shorter configured values are not redacted: they would blank ordinary words.
MIN_SECRET_LENGTH = 8


def configured_secrets() -> list[str]:
    from django.conf import settings

    values = [
        settings.SECRET_KEY,
        *getattr(settings, "SECRET_KEY_FALLBACKS", []),
        getattr(settings, "GITHUB_TOKEN", ""),
        getattr(settings, "GITHUB_APP_PRIVATE_KEY", ""),
        getattr(settings, "GITHUB_WEBHOOK_SECRET", ""),
        getattr(settings, "AGENT_RUNTIME_SECRET", ""),
        getattr(settings, "METRICS_TOKEN", ""),
        *(db.get("PASSWORD", "") for db in settings.DATABASES.values()),
    ]
    return sorted({v for v in values if v and len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    for secret in configured_secrets() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return TOKEN_PATTERN.sub(REDACTED, text)


class RedactFilter(logging.Filter):
    """Redacts the message (arguments merged in) and the traceback of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = configured_secrets()
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it, the caller goes on
            message = None
        if message is not None:
            clean = redact(message, secrets)
            if clean != message:
                record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
    }
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            fields[name] = value
    fields["msg"] = record.getMessage()
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    if record.exc_text:
        fields["exc"] = record.exc_text
    if record.stack_info:
        fields["stack"] = record.stack_info
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), default=str, ensure_ascii=False)


_BARE = re.compile(r"^[A-Za-z0-9_.:/@#+-]+$")


def _kv_value(value: Any) -> str:
    text = str(value)
    if _BARE.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, with newlines escaped


class KeyValueFormatter(logging.Formatter):
    """One `key=value` line per record (logfmt); values with spaces or newlines are quoted,
    so a traceback stays on its line."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_kv_value(v)}" for k, v in _fields(record, self).items())


class PlainFormatter(logging.Formatter):
    """For a terminal (the default with DEBUG): readable, with the context appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        )
        if not context:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{context}]{newline}{rest}"


FORMATTERS = {"json": JsonFormatter, "kv": KeyValueFormatter, "plain": PlainFormatter}


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """settings.LOGGING: every record, ours, Django's and django-q2's, goes through the
    context and redaction filters to one handler on the root logger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": ContextFilter},
            "redact": {"()": RedactFilter},
        },
        "formatters": {"line": {"()": FORMATTERS[log_format]}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "filters": ["context", "redact"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        # django-q2's "django-q" logger installs its own handler only when none is found up
        # the tree: it finds the root's, so its records pass the same filters too.
        "loggers": {"django_q": {"level": "WARNING"}},
    }
