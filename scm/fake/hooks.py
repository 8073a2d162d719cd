"""The fake GitHub's webhooks: hooks configured per repository (as
`POST /repos/{owner}/{repo}/hooks` does) or for every repository (the control API, like an
organization's hook), and their deliveries, sent from a background thread as GitHub sends them.

https://docs.github.com/en/webhooks/webhook-events-and-payloads#delivery-headers and
https://docs.github.com/en/rest/repos/webhooks: each delivery carries X-GitHub-Event,
X-GitHub-Delivery (a GUID per event, shared by every hook it goes to), X-GitHub-Hook-ID, and
with a secret X-Hub-Signature-256 (HMAC-SHA256 of the body) and the legacy SHA-1
X-Hub-Signature; GitHub gives up on a receiver after 10 s. Every delivery is kept with its
answer, newest first, like the hook's "Recent Deliveries".
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPConnection, HTTPSConnection
from typing import Any
from urllib.parse import urlencode, urlsplit

log = logging.getLogger(__name__)

#: GitHub's own limit: a receiver that has not answered in 10 s gets a timed-out delivery.
DELIVERY_TIMEOUT = 10.0
#: Recent deliveries kept (GitHub keeps three days' worth); the oldest go first.
MAX_DELIVERIES = 1000
CONTENT_TYPES = frozenset({"json", "form"})


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeHook:
    id: int
    url: str
    events: list[str]  # "*" subscribes to every event
    secret: str = ""
    content_type: str = "json"
    active: bool = True
    repo: str | None = None  # "owner/name"; None: every repository
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_response: dict[str, Any] = field(
        default_factory=lambda: {"code": None, "status": "unused", "message": None}
    )

    def wants(self, event: str, repo: str | None) -> bool:
        if not self.active:
            return False
        if self.repo is not None and (repo or "").lower() != self.repo.lower():
            return False
        return event == "ping" or "*" in self.events or event in self.events

    def as_json(self, api_url: str) -> dict[str, Any]:
        """The hook as GitHub's REST API shows it (the secret masked)."""
        base = (
            f"{api_url}/repos/{self.repo}/hooks/{self.id}"
            if self.repo
            else f"{api_url}/_fake/hooks/{self.id}"
        )
        config: dict[str, Any] = {
            "url": self.url,
            "content_type": self.content_type,
            "insecure_ssl": "0",
        }
        if self.secret:
            config["secret"] = "********"
        return {
            "type": "Repository" if self.repo else "Global",
            "id": self.id,
            "name": "web",
            "active": self.active,
            "events": list(self.events),
            "config": config,
            "updated_at": _iso(self.updated_at),
            "created_at": _iso(self.created_at),
            "url": base,
            "test_url": f"{base}/test",
            "ping_url": f"{base}/pings",
            "deliveries_url": f"{base}/deliveries",
            "last_response": dict(self.last_response),
        }


@dataclass
class FakeDelivery:
    """One attempt to deliver one event to one hook, and what the receiver answered."""

    id: int
    guid: str
    hook_id: int
    event: str
    action: str | None
    repository_id: int | None
    request_headers: dict[str, str]
    payload: dict[str, Any]
    queued_at: float  # time.monotonic() when the event happened
    delivered_at: datetime | None = None
    duration: float = 0.0
    status: str = "pending"  # "OK", "Invalid HTTP Response: 503", "timed out", ...
    status_code: int = 0  # 0: no HTTP answer
    response_body: str = ""
    generation: int = 0  # FakeHooks.reset() drops what was queued before it

    def summary(self) -> dict[str, Any]:
        """GitHub's "list deliveries for a repository webhook" item."""
        return {
            "id": self.id,
            "guid": self.guid,
            "hook_id": self.hook_id,
            "delivered_at": _iso(self.delivered_at) if self.delivered_at else None,
            "redelivery": False,
            "duration": round(self.duration, 3),
            "status": self.status,
            "status_code": self.status_code,
            "event": self.event,
            "action": self.action,
            "installation_id": None,
            "repository_id": self.repository_id,
        }

    def as_json(self) -> dict[str, Any]:
        """GitHub's "get a delivery": the summary with the request and the response."""
        return {
            **self.summary(),
            "request": {"headers": dict(self.request_headers), "payload": self.payload},
            "response": {"headers": {}, "payload": self.response_body},
        }


def sign(secret: str, body: bytes, digest: str = "sha256") -> str:
    return f"{digest}=" + hmac.new(secret.encode(), body, digest).hexdigest()


def _encode(hook: FakeHook, payload: dict[str, Any]) -> tuple[bytes, str]:
    text = json.dumps(payload)
    if hook.content_type == "form":
        return urlencode({"payload": text}).encode(), "application/x-www-form-urlencoded"
    return text.encode(), "application/json"


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """POST with the header names as GitHub spells them (urllib would re-case them)."""
    parts = urlsplit(url)
    connection_class = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    connection = connection_class(parts.netloc, timeout=timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(4096).decode("utf-8", "replace")
    finally:
        connection.close()


class FakeHooks:
    """Hooks, their deliveries, and the thread that sends them (started on first use)."""

    def __init__(self, *, timeout: float = DELIVERY_TIMEOUT) -> None:
        self.timeout = timeout
        self.hooks: dict[int, FakeHook] = {}
        self.deliveries: list[FakeDelivery] = []
        self._ids = itertools.count(1)
        self._delivery_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._queue: queue.Queue[FakeDelivery | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._generation = 0

    # --- configuration ------------------------------------------------------------------

    def add(
        self,
        url: str,
        *,
        secret: str = "",
        events: list[str] | None = None,
        content_type: str = "json",
        active: bool = True,
        repo: str | None = None,
        repository_id: int | None = None,
    ) -> FakeHook:
        """A new hook; GitHub pings it at once (the `ping` event)."""
        if urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).hostname:
            raise ValueError(f"config.url is not an http(s) URL: {url!r}")
        if content_type not in CONTENT_TYPES:
            raise ValueError(f"config.content_type must be json or form, not {content_type!r}")
        with self._lock:
            hook = FakeHook(
                id=next(self._ids),
                url=url,
                events=list(events or ["push"]),
                secret=secret,
                content_type=content_type,
                active=active,
                repo=repo,
            )
            self.hooks[hook.id] = hook
        if active:
            ping = {
                "zen": "Keep it logically awesome.",
                "hook_id": hook.id,
                "hook": hook.as_json(""),
            }
            if repo:
                ping["repository"] = {"id": repository_id, "full_name": repo}
            self._queue_for(hook, "ping", ping, guid=str(uuid.uuid4()))
        return hook

    def update(self, hook_id: int, **changes: Any) -> FakeHook:
        """PATCH: active, events, and config's url, secret, content_type."""
        with self._lock:
            hook = self.hooks[hook_id]
            for key, value in changes.items():
                if key not in {"active", "events", "url", "secret", "content_type"}:
                    raise TypeError(f"unknown hook field {key!r}")
                if key == "content_type" and value not in CONTENT_TYPES:
                    raise ValueError("config.content_type must be json or form")
                setattr(hook, key, list(value) if key == "events" else value)
            hook.updated_at = datetime.now(UTC)
            return hook

    def remove(self, hook_id: int) -> None:
        with self._lock:
            del self.hooks[hook_id]

    def reset(self) -> None:
        with self._lock:
            self.hooks.clear()
            self.deliveries.clear()
            self._generation += 1

    # --- delivering -----------------------------------------------------------------------

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """An event happened: queue one delivery per hook that subscribes to it (GitHub's
        GUID is per event, so every hook gets the same one)."""
        repo = (payload.get("repository") or {}).get("full_name")
        with self._lock:
            hooks = [h for h in self.hooks.values() if h.wants(event, repo)]
        if not hooks:
            return
        guid = str(uuid.uuid4())
        for hook in hooks:
            self._queue_for(hook, event, payload, guid=guid)

    def _queue_for(self, hook: FakeHook, event: str, payload: dict[str, Any], *, guid: str) -> None:
        headers = {
            "User-Agent": "GitHub-Hookshot/fake",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(hook.id),
            "X-GitHub-Hook-Installation-Target-Type": "repository" if hook.repo else "global",
            "X-GitHub-Hook-Installation-Target-ID": str(
                (payload.get("repository") or {}).get("id") or ""
            ),
        }
        repository = payload.get("repository") or {}
        with self._lock:
            delivery = FakeDelivery(
                id=next(self._delivery_ids),
                guid=guid,
                hook_id=hook.id,
                event=event,
                action=payload.get("action"),
                repository_id=repository.get("id"),
                request_headers=headers,
                payload=payload,
                queued_at=time.monotonic(),
                generation=self._generation,
            )
            self.deliveries.append(delivery)
            del self.deliveries[:-MAX_DELIVERIES]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="fake-github-hooks", daemon=True
                )
                self._thread.start()
        self._queue.put(delivery)

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                if delivery is not None:
                    self._deliver(delivery)
            except Exception:  # the thread must outlive one bad delivery
                log.exception("fake GitHub: delivery %s failed", delivery and delivery.guid)
            finally:
                self._queue.task_done()

    def _deliver(self, delivery: FakeDelivery) -> None:
        with self._lock:
            hook = self.hooks.get(delivery.hook_id)
            if hook is None or delivery.generation != self._generation:
                delivery.status = "hook removed"
                return
            url, secret = hook.url, hook.secret
            body, content_type = _encode(hook, delivery.payload)
        headers = {**delivery.request_headers, "Content-Type": content_type}
        if secret:
            headers["X-Hub-Signature"] = sign(secret, body, "sha1")
            headers["X-Hub-Signature-256"] = sign(secret, body)
        delivery.request_headers = headers
        started = time.monotonic()
        delivery.delivered_at = datetime.now(UTC)
        try:
            delivery.status_code, delivery.response_body = _post(url, body, headers, self.timeout)
        except TimeoutError:
            delivery.status = "timed out"
        except OSError as error:
            delivery.status = f"failed to connect: {error}"
        delivery.duration = time.monotonic() - started
        if delivery.status_code:
            ok = 200 <= delivery.status_code < 300
            delivery.status = "OK" if ok else f"Invalid HTTP Response: {delivery.status_code}"
        with self._lock:
            hook.last_response = {
                "code": delivery.status_code or None,
                "status": "active" if delivery.status == "OK" else "misconfigured",
                "message": delivery.status,
            }
        log.debug("fake GitHub delivered %s to %s: %s", delivery.event, url, delivery.status)

    def wait_idle(self, timeout: float = 15.0) -> bool:
        """Whether every queued delivery was sent (or given up on) within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def recent(self, hook_id: int | None = None) -> list[FakeDelivery]:
        """Deliveries, newest first (of one hook, or all)."""
        with self._lock:
            found = [d for d in self.deliveries if hook_id is None or d.hook_id == hook_id]
        return found[::-1]
