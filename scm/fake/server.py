"""The fake GitHub server: a ThreadingHTTPServer on loopback in a background thread.

PyGithub reaches it through base_url http://127.0.0.1:PORT, so the real client code runs:
REST under /repos/..., GraphQL at /graphql, and a control API under /_fake/ for other
processes (the demo's worker, `manage.py fake_review`). Tests use the Python methods of
`FakeGitHub` (scm/fake/control.py) directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from graphql import OperationDefinitionNode, parse

from scm.fake.apps import USER, FakeApps, Principal
from scm.fake.control import ControlApi, FakeControl
from scm.fake.faults import HOLD_MAX, Fault, rewrite
from scm.fake.graphql_exec import execute_graphql
from scm.fake.rest import Reply, RestApi, not_found
from scm.fake.state import FakeState, settle

logger = logging.getLogger(__name__)

RATE_LIMIT = 5000
VIEWER = "gastown"  # the login behind a token the fake was not told about


@dataclass
class RequestRecord:
    """One request the fake answered (the control API's own requests are not logged)."""

    method: str
    path: str
    status: int
    operation: str | None = None  # GraphQL operation name
    aliases: int = 0  # GraphQL: top-level fields other than rateLimit (PRs asked about)
    cost: int = 0  # GraphQL points charged
    url_path: str = ""  # the path as sent (with a GitHub Enterprise prefix, if any)
    principal: str = ""  # "user", "installation:ID" or "app:ID"
    held: bool = False  # performed, its answer withheld by a `hold` fault (status still 0)
    hold_seconds: float = 0.0


class FakeGitHub(FakeControl):
    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, web_url: str = "https://github.com"
    ) -> None:
        self.web_url = web_url.rstrip("/")
        self.state = FakeState(web_url=self.web_url)
        self.hooks = self.state.hooks
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self.tokens: set[str] | None = None  # None: any non-empty token is accepted
        self.logins: dict[str, str] = {}  # token -> login (VIEWER for any other)
        # Rate-limit budgets by principal: "user" (personal tokens), "installation:ID".
        self.budgets: dict[str, dict[str, int]] = {}
        self.reset_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        self.apps = FakeApps()
        self._lock = threading.Lock()
        # Set when the faults are cleared: the answers `hold` faults withhold go out.
        self._release = threading.Event()
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.rest = RestApi(self.state, lambda: self.url, self.web_url)
        self.control = ControlApi(self)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API root, e.g. http://127.0.0.1:8765 (use as GITHUB_API_URL)."""
        if self._server is None:
            raise RuntimeError("the fake GitHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-github", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Foreground mode for `manage.py fake_github`."""
        if self._server is None:
            self.start()
        assert self._thread is not None
        self._thread.join()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        """Forget everything: state, hooks and deliveries, faults, the request log, tokens
        and budgets."""
        with self._lock:
            self.state.reset()
            self.hooks.reset()
            self.faults.clear()
            self._release.set()
            self._release = threading.Event()
            self.requests.clear()
            self.tokens = None
            self.logins.clear()
            self.budgets.clear()
            self.apps.reset()
            self.reset_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- requests -----------------------------------------------------------------------

    def take_fault(self, method: str, path: str, operation: str | None = None) -> Fault | None:
        """The fault this request gets (None: answered normally), consumed from the faults
        added with add_fault. A subclass may choose faults of its own (the soak draws them
        at random) and fall back on this."""
        with self._lock:
            for fault in self.faults:
                if not fault.spent and fault.matches(method, path, operation):
                    if fault.passed < fault.after:
                        fault.passed += 1
                        continue
                    fault.hits += 1
                    return fault
        return None

    def budget(self, principal: str = "user") -> dict[str, int]:
        """What is left of a principal's hourly budgets, by resource ("core", "graphql")."""
        with self._lock:
            return self.budgets.setdefault(principal, {"core": RATE_LIMIT, "graphql": RATE_LIMIT})

    def installation_budget(self, installation_id: int) -> dict[str, int]:
        return self.budget(f"installation:{installation_id}")

    @property
    def graphql_remaining(self) -> int:
        return self.budget()["graphql"]

    @graphql_remaining.setter
    def graphql_remaining(self, value: int) -> None:
        self.budget()["graphql"] = value

    @property
    def core_remaining(self) -> int:
        return self.budget()["core"]

    @core_remaining.setter
    def core_remaining(self, value: int) -> None:
        self.budget()["core"] = value

    def _rate_headers(self, resource: str, principal: str = "user") -> dict[str, str]:
        remaining = self.budget(principal)[resource]
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Used": str(RATE_LIMIT - remaining),
            "X-RateLimit-Reset": str(int(self.reset_at.timestamp())),
            "X-RateLimit-Resource": resource,
        }

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        # GitHub Enterprise Server: REST under /api/v3, GraphQL at /api/graphql.
        if path == "/api/graphql":
            path = "/graphql"
        elif path.startswith("/api/v3/"):
            path = path.removeprefix("/api/v3")
        query = dict(parse_qsl(parts.query))
        if path.startswith("/_fake/"):
            reply = self.control.dispatch(method, path, query, _json_or_none(raw))
            return reply.status, {}, json.dumps(reply.body).encode()
        # Logged on arrival (status 0 until answered), so a call the client gave up on
        # still shows.
        record = RequestRecord(method, path, 0, url_path=parts.path)
        with self._lock:
            self.requests.append(record)
        status, out_headers, body = self._handle_api(method, path, query, headers, raw, record)
        if record.hold_seconds:
            with self._lock:
                release = self._release
            record.held = True
            release.wait(record.hold_seconds)
            record.held = False
        record.status = status
        return status, out_headers, body

    def _handle_api(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        record: RequestRecord,
    ) -> tuple[int, dict[str, str], bytes]:
        resource = "graphql" if path == "/graphql" else "core"
        rate_headers = self._rate_headers(resource)
        payload = _json_or_none(raw)
        if path == "/graphql" and isinstance(payload, dict):
            record.operation, record.aliases = _describe(str(payload.get("query", "")))

        fault = self.take_fault(method, path, record.operation)
        if fault is not None:
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "hold":
                record.hold_seconds = fault.delay or HOLD_MAX
            else:
                early = self._fault_reply(fault, rate_headers)
                if early is not None:
                    return early

        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        found = self.apps.authenticate(scheme, token, path) if token else None
        if isinstance(found, Reply):
            return _reply(found, rate_headers)
        if not token or (found is USER and self.tokens is not None and token not in self.tokens):
            return _reply(
                Reply(
                    401,
                    {
                        "message": "Bad credentials",
                        "documentation_url": "https://docs.github.com/rest",
                        "status": "401",
                    },
                ),
                rate_headers,
            )
        assert found is not None
        principal = found.key
        record.principal = principal
        if found.app is not None:
            app_reply = self.apps.dispatch(method, path, found, self.url)
            return _reply(app_reply or not_found(), {})
        rate_headers = self._rate_headers(resource, principal)

        with self.state.lock:
            for repo in self.state.repos.values():
                settle(repo)

        if path == "/graphql" and method == "POST":
            if not isinstance(payload, dict) or "query" not in payload:
                return _reply(Reply(400, {"message": "Problems parsing JSON"}), rate_headers)
            answer, cost = execute_graphql(
                self.state,
                str(payload["query"]),
                payload.get("variables") or {},
                web_url=self.web_url,
                remaining=self.budget(principal)["graphql"],
                reset_at=self.reset_at,
                viewer=self._viewer(token, found),
            )
            budget = self.budget(principal)
            with self._lock:
                budget["graphql"] = max(0, budget["graphql"] - cost)
            record.cost = cost
            if fault is not None and fault.kind == "graphql_errors":
                answer = _inject_errors(answer, fault)
            if fault is not None and fault.kind == "rewrite_enum":
                answer = rewrite(answer, fault.field, fault.value)
            return _reply(Reply(200, answer), self._rate_headers(resource, principal))

        reply = self.rest.dispatch(method, path, query, payload, 0)
        if reply is None:
            reply = Reply(
                404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            )
        if method == "GET" and reply.status == 200:
            etag = entity_tag(reply.body)
            if etag_matches(headers.get("if-none-match", ""), etag):
                # Not counted against the primary rate limit: an authorised conditional
                # request answered 304.
                return 304, {**self._rate_headers(resource, principal), "ETag": etag}, b""
            reply = Reply(200, reply.body, {**(reply.headers or {}), "ETag": etag})
        budget = self.budget(principal)
        with self._lock:
            budget["core"] = max(0, budget["core"] - 1)
        if fault is not None and fault.kind == "rewrite_enum":
            reply = Reply(
                reply.status, rewrite(reply.body, fault.field, fault.value), reply.headers
            )
        return _reply(reply, self._rate_headers(resource, principal))

    def _viewer(self, token: str, principal: Principal) -> str:
        if principal.installation_id is not None:
            installation = self.apps.installations[principal.installation_id]
            return f"{self.apps.apps[installation.app_id].slug}[bot]"
        return self.logins.get(token, VIEWER)

    def _fault_reply(
        self, fault: Fault, rate_headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        docs = "https://docs.github.com/rest"
        if fault.kind == "graphql_timeout":
            # What GitHub answers when a document runs past its time limit.
            body = {
                "data": None,
                "errors": [
                    {
                        "message": "Something went wrong while executing your query. This may "
                        "be the result of a timeout, or it could be a GitHub bug. Please "
                        "include `0400:3E0A:1F2B3C:4D5E6F:65A1B2C3` when reporting this issue."
                    }
                ],
            }
            return _reply(Reply(200, body), rate_headers)
        if fault.kind == "malformed":
            return (
                200,
                {**rate_headers, "Content-Type": "application/json"},
                b'{"data": {"pr0": {"pullRe',
            )
        if fault.kind == "forbidden":
            return _reply(
                Reply(
                    403,
                    {
                        "message": "Resource not accessible by personal access token",
                        "documentation_url": docs,
                        "status": "403",
                    },
                    {"X-Accepted-GitHub-Permissions": fault.permission},
                ),
                rate_headers,
            )
        if fault.kind == "rate_limit":
            reset = int(time.time()) + fault.reset_in
            message = "API rate limit exceeded for user ID 1."
            limited = {
                **rate_headers,
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            }
            if fault.retry_after is not None:
                message = (
                    "You have exceeded a secondary rate limit. Please wait a few minutes "
                    "before you try again."
                )
                limited = {**rate_headers, "Retry-After": str(fault.retry_after)}
            status = fault.status if fault.status in {403, 429} else 403
            return _reply(
                Reply(
                    status,
                    {
                        "message": message,
                        "documentation_url": docs,
                        "status": str(status),
                    },
                ),
                limited,
            )
        if fault.kind == "status":
            if fault.status == 401:
                return _reply(
                    Reply(
                        401,
                        {"message": "Bad credentials", "documentation_url": docs, "status": "401"},
                    ),
                    rate_headers,
                )
            if fault.status in {502, 503, 504}:
                # GitHub's proxies answer these with HTML, not JSON.
                html = f"<html><body><h1>{fault.status} Bad Gateway</h1></body></html>".encode()
                return fault.status, {**rate_headers, "Content-Type": "text/html"}, html
            return _reply(
                Reply(fault.status, {"message": "Server Error", "status": str(fault.status)}),
                rate_headers,
            )
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle and delayed ACKs every keep-alive
    # request would wait ~40 ms.
    disable_nagle_algorithm = True
    fake: FakeGitHub

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, out_headers, body = self.fake.handle(self.command, self.path, headers, raw)
        except Exception:
            logger.exception("fake GitHub failed on %s %s", self.command, self.path)
            status, out_headers, body = 500, {}, b'{"message": "fake GitHub crashed"}'
        try:
            self.send_response(status)
            out_headers.setdefault("Content-Type", "application/json; charset=utf-8")
            for name, value in out_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a "slow" fault with a short timeout)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake GitHub: " + format, *args)


def entity_tag(body: Any) -> str:
    """A weak ETag of a REST answer: the same representation, the same tag, as GitHub's
    (https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate)."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return f'W/"{digest[:40]}"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 §13.1.2): "*", or any listed tag equal to
    `etag` once the W/ prefixes are set aside."""
    listed = [tag.strip() for tag in if_none_match.split(",") if tag.strip()]
    return "*" in listed or etag.removeprefix("W/") in {t.removeprefix("W/") for t in listed}


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _reply(reply: Reply, rate_headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    headers = {**rate_headers, **(reply.headers or {})}
    body = b"" if reply.status == 204 else json.dumps(reply.body).encode()
    return reply.status, headers, body


def _describe(query: str) -> tuple[str | None, int]:
    try:
        document = parse(query)
    except Exception:
        return None, 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            name = definition.name.value if definition.name else None
            fields = [
                s
                for s in definition.selection_set.selections
                if getattr(getattr(s, "name", None), "value", None) != "rateLimit"
            ]
            return name, len(fields)
    return None, 0


def _inject_errors(answer: dict[str, Any], fault: Fault) -> dict[str, Any]:
    data = dict(answer.get("data") or {})
    aliases = fault.aliases or [a for a in data if a != "rateLimit"]
    errors = list(answer.get("errors") or [])
    for alias in aliases:
        data[alias] = None
        errors.append(
            {
                "type": fault.error_type,
                "path": [alias],
                "locations": [{"line": 1, "column": 1}],
                "message": f"Injected {fault.error_type} for {alias}.",
            }
        )
    return {"data": data, "errors": errors}
