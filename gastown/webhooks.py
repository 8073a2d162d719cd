"""GitHub webhooks: a PR event makes its MRs due for a feedback check at once (domain.md §3 R1, §4).

The request only verifies, records and enqueues: no GitHub call happens here, so GitHub gets
its answer fast (it gives up after 10 s). The feedback check task then asks GitHub for the
truth; the payload is a hint of *which* PRs to look at, never trusted for their state.

https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from beads.merge_requests import merge_request_write
from beads.models import ACTIVE_MR_STATES, Blocker, MergeRequest
from gastown.api.http import unstorable_text
from gastown.models import (
    Convoy,
    WebhookDelivery,
    WebhookDeliveryStatus,
)
from gastown.scheduling import enqueue_feedback_check

log = logging.getLogger(__name__)

#: Events that can change what a PR waits on (review, checks, threads, state, head).
PR_EVENTS = frozenset({"pull_request", "pull_request_review", "pull_request_review_thread"})
CHECK_EVENTS = frozenset({"check_suite", "check_run", "status"})
#: The merge queue's group for a PR started its checks or ended (merged, or dropped: the
#: next check reads why, docs/domain.md §5).
QUEUE_EVENTS = frozenset({"merge_group"})
_MERGE_GROUP_PR = re.compile(r"/pr-([0-9]{1,10})-[0-9a-f]+$")
MAX_PR_NUMBERS = 100
#: GitHub caps payloads at 25 MB (larger ones are not delivered); Django's own limit for a
#: request body (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB) is right for every other view.
#: https://docs.github.com/en/webhooks/webhook-events-and-payloads#payload-cap
MAX_BODY_BYTES = 25 * 1024 * 1024
#: X-GitHub-Event is a lower-case event name, X-GitHub-Delivery a GUID.
_EVENT_SHAPE = re.compile(r"[a-z_]{1,60}")
_DELIVERY_SHAPE = re.compile(r"[A-Za-z0-9._-]{1,100}")


class PayloadError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _answer(status: int, message: str, **extra: Any) -> JsonResponse:
    key = "error" if status >= 400 else "status"
    return JsonResponse({key: message, **extra}, status=status)


def signature_valid(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode("latin-1", "replace"))


def _body(request: HttpRequest) -> bytes | None:
    """The body, or None when it is larger than GitHub ever sends.

    Read from the stream rather than `request.body`, which applies Django's 2.5 MB limit."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        return None
    body = request.read(MAX_BODY_BYTES + 1)
    return body if len(body) <= MAX_BODY_BYTES else None


def _payload(request: HttpRequest, body: bytes) -> dict[str, Any]:
    # GitHub sends JSON, or a form with a `payload` field when the hook is set to that.
    try:
        if request.content_type == "application/x-www-form-urlencoded":
            values = parse_qs(body.decode("utf-8"), strict_parsing=False).get("payload", [])
            if len(values) != 1:
                raise PayloadError("The form has no single `payload` field.")
            data = json.loads(values[0])
        else:
            data = json.loads(body)
    except (ValueError, RecursionError):
        raise PayloadError("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise PayloadError("The payload must be a JSON object.")
    # Every string, read or not: a delivery the database could not record is refused whole
    # (GitHub never sends one; whoever holds the secret and does is told which field).
    if bad := unstorable_text(data):
        raise PayloadError(bad[1], bad[0])
    return data


def _obj(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise PayloadError(f"The payload has no `{key}` object.", key)
    return value


def _pr_number(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise PayloadError(f"{field} is not a positive pull request number.", field)
    return value


def _text(value: Any, field: str, *, max_length: int = 200, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise PayloadError(f"{field} is missing or not a string.", field)
    if len(value) > max_length:
        raise PayloadError(f"{field} is longer than {max_length} characters.", field)
    return value


def _pr_url_pattern(repo: str, numbers: list[int] | None = None) -> str:
    """Matches the pull request URLs of `repo` (of those numbers), as parse_pr_url reads
    them: the repository and number are read from pr_url, the one place they are stored."""
    number = "|".join(str(n) for n in numbers) if numbers else "[0-9]+"
    return rf"^https?://[^/]+/{re.escape(repo)}/pull/0*({number})([/?#].*)?$"


def _affected(event: str, data: dict[str, Any]) -> tuple[str, QuerySet[MergeRequest]]:
    """The repository and the MRs an event concerns (by PR number, or by head SHA)."""
    repo = _text(_obj(data, "repository").get("full_name"), "repository.full_name")
    watched = MergeRequest.objects.filter(pr_url__iregex=_pr_url_pattern(repo)).filter(
        # R1: open work, and failed landing MRs that hold a suppression.
        Q(state__in=ACTIVE_MR_STATES)
        | Q(
            pk__in=Convoy.objects.filter(respawn_suppressed_since__isnull=False).values(
                "suppressed_landing_mr"
            )
        )
    )
    if event in PR_EVENTS:
        number = _pr_number(_obj(data, "pull_request").get("number"), "pull_request.number")
        return repo, watched.filter(pr_url__iregex=_pr_url_pattern(repo, [number]))
    if event == "merge_group":
        # GitHub names the PR only in the merge group's branch:
        # refs/heads/gh-readonly-queue/<base>/pr-<number>-<base sha>.
        head_ref = _text(
            _obj(data, "merge_group").get("head_ref"), "merge_group.head_ref", max_length=300
        )
        found = _MERGE_GROUP_PR.search(head_ref)
        if found is None:
            raise PayloadError(
                "merge_group.head_ref names no pull request (gh-readonly-queue/BASE/pr-N-SHA).",
                "merge_group.head_ref",
            )
        number = _pr_number(int(found.group(1)), "merge_group.head_ref")
        return repo, watched.filter(pr_url__iregex=_pr_url_pattern(repo, [number]))
    if event == "status":
        sha = _text(data.get("sha"), "sha", max_length=64)
        return repo, watched.filter(head_sha__iexact=sha)
    run = _obj(data, event)
    sha = _text(run.get("head_sha"), f"{event}.head_sha", max_length=64)
    pulls = run.get("pull_requests") or []
    if not isinstance(pulls, list):
        raise PayloadError(f"{event}.pull_requests is not a list.", f"{event}.pull_requests")
    numbers = set()
    for i, pull in enumerate(pulls[:MAX_PR_NUMBERS]):
        field = f"{event}.pull_requests[{i}]"
        if not isinstance(pull, dict):
            raise PayloadError(f"{field} is not an object.", field)
        numbers.add(_pr_number(pull.get("number"), f"{field}.number"))
    if not numbers:
        return repo, watched.filter(head_sha__iexact=sha)
    by_number = Q(pr_url__iregex=_pr_url_pattern(repo, sorted(numbers)))
    return repo, watched.filter(Q(head_sha__iexact=sha) | by_number)


def _make_due(mrs: Iterable[MergeRequest], *, event: str) -> list[MergeRequest]:
    now = timezone.now()
    rows = list(mrs)
    if not rows:
        return rows
    ids = [mr.pk for mr in rows]
    merge_request_write(pks=ids, now=now, new_version=False, check_requested_at=now)
    if event == "pull_request_review":
        # A review was submitted: what GitHub's merge endpoint refused for a missing review
        # may pass now, so that refusal's hold ends (the next check may ask again).
        merge_request_write(
            pks=ids,
            where=Q(merge_refusal__refusal_kind=Blocker.HUMAN_REVIEW),
            now=now,
            merge_hold_from=None,
        )
    for town_id in sorted({mr.bead.town_id for mr in rows}):
        transaction.on_commit(functools.partial(enqueue_feedback_check, town_id))
    return rows


@csrf_exempt
def github_webhook(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = _answer(405, "GitHub webhooks are POSTed here.")
        response["Allow"] = "POST"
        return response
    secret = settings.GITHUB_WEBHOOK_SECRET
    if not secret:
        log.warning("GitHub webhook refused: GITHUB_WEBHOOK_SECRET is not set.")
        return _answer(
            503,
            "Webhooks are disabled: set GITHUB_WEBHOOK_SECRET to the secret configured on "
            "the GitHub webhook.",
        )
    body = _body(request)
    if body is None:
        return _answer(413, f"The payload is larger than GitHub's {MAX_BODY_BYTES} bytes.")
    header = request.headers.get("X-Hub-Signature-256", "")
    if not header:
        log.warning("GitHub webhook refused: no X-Hub-Signature-256 header.")
        return _answer(401, "Missing X-Hub-Signature-256: sign deliveries with the secret.")
    if not signature_valid(secret, body, header):
        log.warning(
            "GitHub webhook refused: bad signature (delivery %s).",
            request.headers.get("X-GitHub-Delivery", "?")[:100],
        )
        return _answer(403, "The X-Hub-Signature-256 signature does not match the body.")
    event = request.headers.get("X-GitHub-Event", "")
    delivery = request.headers.get("X-GitHub-Delivery", "")
    if not _EVENT_SHAPE.fullmatch(event) or not _DELIVERY_SHAPE.fullmatch(delivery):
        return _answer(
            400,
            "X-GitHub-Event (an event name) and X-GitHub-Delivery (a GUID) are required.",
            field="X-GitHub-Event" if not _EVENT_SHAPE.fullmatch(event) else "X-GitHub-Delivery",
        )
    try:
        data = _payload(request, body)
        action = _text(data.get("action"), "action", max_length=60, required=False)
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = WebhookDelivery.objects.create(
                        delivery_id=delivery,
                        event=event,
                        action=action,
                        status=WebhookDeliveryStatus.IGNORED,
                    )
            except IntegrityError:
                return _answer(200, "duplicate", delivery=delivery)
            if event == "ping":
                return _answer(200, "pong", delivery=delivery)
            if event not in PR_EVENTS | CHECK_EVENTS | QUEUE_EVENTS:
                return _answer(202, "ignored", event=event, delivery=delivery)
            repo, mrs = _affected(event, data)
            due = _make_due(
                mrs.select_related("bead").only("pk", "pr_url", "bead__id", "bead__town_id")[
                    :MAX_PR_NUMBERS
                ],
                event=event,
            )
            WebhookDelivery.objects.filter(pk=record.pk).update(
                status=WebhookDeliveryStatus.PROCESSED, repo=repo, merge_requests=len(due)
            )
    except PayloadError as exc:
        log.warning("GitHub webhook %s (%s) rejected: %s", delivery, event, exc.message)
        return _answer(400, exc.message, field=exc.field)
    return _answer(202, "accepted", merge_requests=len(due), delivery=delivery)
