"""The API's HTTP plumbing: one decorator for method, token, content type and errors, and
the validators that name the offending field.

Every write runs in one transaction (the decorator opens it), so a request rejected halfway
leaves nothing behind.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from gastown.api.auth import api_token_authenticate, bearer_token
from gastown.models import ApiToken

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def bad_request(message: str, field: str | None = None) -> NoReturn:
    raise ApiError(400, message, field)


def not_found(message: str, field: str | None = None) -> NoReturn:
    raise ApiError(404, message, field)


def error_response(status: int, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "field": field}, status=status)


#: What PostgreSQL cannot store in text or jsonb: NUL, and surrogate code points (json.loads
#: joins a valid pair into one character, so any left are lone and not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_text(data: Any) -> tuple[str, str] | None:
    """The JSON path of the first string (value or key) in decoded JSON that the database
    cannot store, and what is wrong with it; None when every string is safe.

    The one check for strings from outside (API bodies and webhook payloads): it runs before
    anything reads a field, so no field can forget it. Iterative, so any depth json.loads
    accepts is walked."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            found = _UNSTORABLE.search(value)
            if found:
                return path, _unstorable_reason(found.group())
        elif isinstance(value, dict):
            children = []
            for key, item in value.items():
                found = _UNSTORABLE.search(key)
                if found:
                    name = ascii(key)[1:-1]  # the path itself must be printable
                    where = f"{path}.{name}" if path else name
                    return where, _unstorable_reason(found.group()) + " (in the key)"
                children.append((f"{path}.{key}" if path else key, item))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{i}]", item) for i, item in enumerate(value)]))
    return None


def _unstorable_reason(char: str) -> str:
    if char == "\x00":
        return "Text may not contain NUL characters."
    return "Text must be valid Unicode (a lone surrogate such as \\ud800 is not)."


def _read_json(request: HttpRequest, *, body_required: bool) -> dict[str, Any]:
    if not request.body:
        if body_required:
            bad_request("The request body must be a JSON object.")
        return {}
    if request.content_type != "application/json":
        raise ApiError(
            415, f"Send JSON with Content-Type: application/json, not {request.content_type!r}."
        )
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError):
        bad_request("The request body is not valid JSON.")
    if not isinstance(data, dict):
        bad_request("The request body must be a JSON object.")
    if bad := unstorable_text(data):
        bad_request(bad[1], bad[0])
    return data


View = Callable[..., JsonResponse]


def api_endpoint(
    *methods: str, auth: bool = True, body_required: bool = False, query: tuple[str, ...] = ()
) -> Callable[[View], View]:
    """Wrap a view `view(request, token, data, **kwargs)`: only `methods` (405 otherwise, with
    Allow), a valid bearer token (401), only the `query` parameters (400 naming another),
    JSON in for writes (415, 400), ApiError out as {"error", "field"}; writes run in one
    transaction."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> JsonResponse:
            if request.method not in methods:
                response = error_response(405, f"Use {' or '.join(methods)} here.")
                response["Allow"] = ", ".join(methods)
                return response
            token: ApiToken | None = None
            if auth:
                token = api_token_authenticate(bearer_token(request))
                if token is None:
                    response = error_response(
                        401, "Send a valid, unrevoked API token as 'Authorization: Bearer ...'."
                    )
                    response["WWW-Authenticate"] = 'Bearer realm="gastown"'
                    return response
            try:
                refuse_unknown(request.GET, frozenset(query), what="query parameter")
                if request.method == "GET":
                    return view(request, token, {}, **kwargs)
                data = _read_json(request, body_required=body_required)
                with transaction.atomic():
                    return view(request, token, data, **kwargs)
            except ApiError as exc:
                return error_response(exc.status, exc.message, exc.field)

        return wrapper

    return decorate


# --- validators ---------------------------------------------------------------------------


def get_str(
    data: dict[str, Any],
    field: str,
    *,
    required: bool = False,
    default: str = "",
    max_length: int = 300,
    prefix: str = "",
    strip: bool = True,
) -> str:
    """A string field; null is the same as leaving it out. Its length counts as sent (the
    document's maxLength); text is stored stripped, so required text needs a non-space
    character. An identifier (`strip=False`) may not start or end with whitespace at all."""
    name = prefix + field
    value = data.get(field)
    if value is None:
        if required:
            bad_request(f"{name} is required.", name)
        return default
    if not isinstance(value, str):
        bad_request(f"{name} must be a string.", name)
    if len(value) > max_length:
        bad_request(f"{name} is longer than {max_length} characters.", name)
    if not strip and value != value.strip():
        bad_request(f"{name} may not start or end with whitespace.", name)
    value = value.strip()
    if required and not value:
        bad_request(f"{name} may not be empty.", name)
    return value


def refuse_unknown(
    data: Mapping[str, Any], known: frozenset[str], *, prefix: str = "", what: str = "field"
) -> None:
    """A field the endpoint does not read is a mistake the client should hear about (a typo
    would otherwise be dropped silently); the document says so with additionalProperties."""
    for key in data:
        if key not in known:
            names = ", ".join(sorted(known)) or "none"
            bad_request(
                f"Unknown {what} {prefix}{key[:100]!r}; the known ones are: {names}.",
                prefix + key,
            )


def get_choice(
    data: dict[str, Any], field: str, choices: list[str], *, default: str, prefix: str = ""
) -> str:
    name = prefix + field
    value = data.get(field)
    if value is None:
        return default
    if not isinstance(value, str) or value not in choices:
        bad_request(f"{name} must be one of {', '.join(choices)}.", name)
    return value


def get_id(data: dict[str, Any], field: str, *, required: bool = False, prefix: str = "") -> int:
    name = prefix + field
    value = data.get(field)
    if value is None:
        if required:
            bad_request(f"{name} is required.", name)
        return 0
    return as_id(value, name)


def as_id(value: Any, name: str) -> int:
    # JSON has one number type: 7.0 is the integer 7 (as JSON Schema's "integer" says).
    if isinstance(value, float) and value.is_integer() and 1 <= value <= MAX_ID:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        bad_request(f"{name} must be a positive integer id.", name)
    return value


def get_bool(data: dict[str, Any], field: str, *, required: bool = False) -> bool:
    value = data.get(field)
    if value is None and required:
        bad_request(f"{field} is required.", field)
    if value is None:
        return False
    if not isinstance(value, bool):
        bad_request(f"{field} must be true or false.", field)
    return value


def get_list(data: dict[str, Any], field: str, *, max_items: int, prefix: str = "") -> list[Any]:
    name = prefix + field
    value = data.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        bad_request(f"{name} must be a list.", name)
    if len(value) > max_items:
        bad_request(f"{name} has more than {max_items} items.", name)
    return value


def clean_path_text(value: str) -> str:
    """A name taken from the URL: anything unusable simply matches nothing."""
    if len(value) > 100 or unstorable_text(value):
        return ""
    return value
