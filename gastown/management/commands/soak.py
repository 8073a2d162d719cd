"""`manage.py soak`: several worker processes, one database, the fake GitHub on a bad day
(README, "Reliability").

The command seeds a town, starts the fake GitHub in this process, a gunicorn serving the app
(for the webhooks) and `--workers` worker processes (`manage.py soak --as-worker`, each a loop
of the reconciler tick and the feedback check, with the demo's simulated agents answering
dispatches). For `--duration` seconds the fake injects faults at `--fault-rate` per request
plus town-wide outages, workers are SIGKILLed at random moments and inside side effects (the
fake kills the worker whose call it just served: GitHub did it, the worker never heard), and
signed webhooks arrive, some replayed, some bad. Humans (this process) approve PRs, CI turns
them green, and a share of PRs wait on a human for the whole run. Then the faults and kills
stop and the workers get `--drain` seconds to merge every ready PR.

The table is counted from the database and from the fake (its request log and its pull
requests), not from what this command believes it did. The exit status is 1 when an
invariant is broken, so CI fails. Run it on a scratch PostgreSQL database: it leaves its
town behind (named soak-*).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connection
from django.utils import timezone

from beads.audit import Actor
from beads.models import (
    Bead,
    BeadEvent,
    BeadStatus,
    BeadType,
    MergeRequest,
    MergeRequestState,
    Priority,
)
from beads.services import bead_create
from gastown.models import (
    Convoy,
    ConvoyStatus,
    MergeMode,
    ReconcilerTick,
    Rig,
    Town,
    WebhookDelivery,
)
from gastown.reconciler import actions as a
from gastown.services.convoys import convoy_create
from scm.fake.faults import Fault
from scm.fake.server import FakeGitHub

REPO_ROOT = Path(__file__).resolve().parents[3]
REPO = "soak/app"
HELD = "[held]"  # in a PR's title: no human ever approves it
CONVOY_BEADS = 3
#: Calls whose effect on GitHub a worker records afterwards: a kill between GitHub doing it
#: and the worker writing it down is the case crash-safety is about.
SIDE_EFFECTS = {
    "open PR": re.compile(r"^/repos/[^/]+/[^/]+/pulls$"),
    "create branch": re.compile(r"^/repos/[^/]+/[^/]+/git/refs$"),
    "merge": re.compile(r"^/repos/[^/]+/[^/]+/pulls/[0-9]+/merge$"),
}
_MERGE_PATH = re.compile(r"^/repos/([^/]+/[^/]+)/pulls/([0-9]+)/merge$", re.IGNORECASE)
#: A PR ready this long must have merged by the end: a check that failed as a whole backs
#: the town's checks off for a minute (gastown.feedback.checks), then one check merges it.
SETTLE_SECONDS = 70
#: The client gives up after 10 s (scm.client.GitHubClient): a slower answer is a time-out.
TIMEOUT_DELAY = 10.5


@dataclass
class Options:
    duration: float
    workers: int
    mrs: int
    convoys: int
    fault_rate: float
    kill_rate: float  # kills per minute, all workers together
    landing_kills: float  # share of landing PR openings whose worker is killed right after
    held_share: float
    drain: float
    outages: int
    outage_seconds: float
    seed: int


QUICK = {
    "duration": 55.0,
    "workers": 3,
    "mrs": 60,
    "convoys": 3,
    "fault_rate": 0.05,
    "kill_rate": 6.0,
    "landing_kills": 1.0,
    "drain": 120.0,
    "outages": 2,
    "outage_seconds": 8.0,
}


# --- the fake GitHub on a bad day ----------------------------------------------------------


class SoakFake(FakeGitHub):
    """The fake GitHub with random faults per request, outage windows, and a SIGKILL for the
    worker whose side-effect call it just served. Each worker sends its own token
    (soak-worker-N), which is how the fake knows whom to kill."""

    def __init__(self, rng: random.Random, fault_rate: float) -> None:
        super().__init__()
        self.rng = rng
        self.fault_rate = fault_rate
        self.faulting = False
        self.timeout_delay = TIMEOUT_DELAY
        self.outage: tuple[float, str] | None = None  # (until, "graphql" or "all")
        self.faults_by_kind: Counter[str] = Counter()
        self.worker_pids: dict[str, int] = {}  # token -> pid
        self.kill_inside_armed = 0
        # The moment crash-safety is about most: GitHub opened the landing PR, the worker
        # never wrote it down. This share of landing PR openings is killed while faulting.
        self.landing_kill_share = 0.0
        self.kills_inside: Counter[str] = Counter()
        self.merges: Counter[tuple[str, int]] = Counter()  # (repo, PR) -> merges performed
        self._soak_lock = threading.Lock()

    def start(self) -> SoakFake:
        super().start()
        assert self._server is not None
        # A worker killed mid-request resets its connection: expected here, not worth a trace.
        self._server.handle_error = _quiet  # type: ignore[method-assign]
        return self

    def take_fault(self, method: str, path: str, operation: str | None = None) -> Fault | None:
        fault = super().take_fault(method, path, operation)
        if fault is not None or not self.faulting:
            return fault
        graphql = path == "/graphql"
        with self._soak_lock:
            if self.outage is not None:
                until, scope = self.outage
                if time.monotonic() < until and (graphql or scope == "all"):
                    self.faults_by_kind[f"outage ({scope}: 502)"] += 1
                    return Fault("status", status=502)
            if self.rng.random() >= self.fault_rate:
                return None
            kinds: list[tuple[str, Callable[[], Fault], int]] = [
                ("5xx", lambda: Fault("status", status=self.rng.choice([500, 502, 503])), 3),
                ("time-out", lambda: Fault("slow", delay=self.timeout_delay), 1),
                ("malformed/truncated body", lambda: Fault("malformed"), 2),
                ("rate limit (primary)", lambda: Fault("rate_limit", reset_in=3), 1),
                ("rate limit (secondary)", lambda: Fault("rate_limit", retry_after=2), 1),
            ]
            if graphql:
                kinds += [
                    (
                        "GraphQL errors",
                        lambda: Fault("graphql_errors", error_type="SERVICE_UNAVAILABLE"),
                        2,
                    ),
                    ("GraphQL time-out", lambda: Fault("graphql_timeout"), 1),
                ]
            name, make, _ = self.rng.choices(kinds, weights=[w for _, _, w in kinds])[0]
            self.faults_by_kind[name] += 1
            return make()

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        answer = super().handle(method, target, headers, raw)
        merged = _MERGE_PATH.match(target.split("?", 1)[0])
        if merged and method == "PUT" and answer[0] == 200 and b'"merged": true' in answer[2]:
            with self._soak_lock:  # a merge GitHub performed (a faulted 200 performs none)
                self.merges[(merged[1].lower(), int(merged[2]))] += 1
        if answer[0] >= 300 or method not in {"POST", "PUT"}:
            return answer
        path = target.split("?", 1)[0].rstrip("/")
        kind = next((k for k, p in SIDE_EFFECTS.items() if p.match(path)), None)
        pid = self.worker_pids.get(headers.get("authorization", "").rpartition(" ")[2])
        if kind is None or pid is None:
            return answer
        if kind == "open PR" and b'"head": "convoy/' in raw:
            kind = "open landing PR"
        with self._soak_lock:
            if kind == "open landing PR" and self.faulting:
                kill = self.rng.random() < self.landing_kill_share
            else:
                kill = self.kill_inside_armed > 0
                self.kill_inside_armed -= int(kill)
            if not kill:
                return answer
            self.kills_inside[kind] += 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return answer


def _quiet(request: object, client_address: object) -> None:
    return None


# --- webhooks ----------------------------------------------------------------------------


@dataclass
class Deliveries:
    """What was POSTed to the app, to compare with what the database recorded."""

    good: dict[str, int] = field(default_factory=dict)  # delivery id -> final HTTP status
    replays: dict[str, list[int]] = field(default_factory=dict)  # id -> statuses of replays
    replay_answers: Counter[str] = field(default_factory=Counter)
    bad: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (kind, status)
    lock: threading.Lock = field(default_factory=threading.Lock)


class WebhookSender:
    def __init__(self, url: str, secret: str, rng: random.Random) -> None:
        self.url = url
        self.secret = secret
        self.rng = rng
        self.sent = Deliveries()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="soak-webhooks")
        self._n = 0
        self._lock = threading.Lock()

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                answer = json.loads(error.read() or b"{}")
            except ValueError:
                answer = {}
            return error.code, answer
        except (OSError, ValueError):
            return 0, {}

    def _sign(self, body: bytes, secret: str | None = None) -> str:
        key = (secret or self.secret).encode()
        return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._n += 1
            return f"{prefix}-{self._n}-{secrets.token_hex(4)}"

    def send(self, event: str, payload: dict[str, Any], *, replay_share: float, bad_share: float):
        body = json.dumps(payload).encode()
        delivery = self._next_id("soak")
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": self._sign(body),
        }
        replay = self.rng.random() < replay_share
        bad = self.rng.random() < bad_share
        self.pool.submit(self._deliver, body, headers, replay)
        if bad:
            self.pool.submit(self._bad, event, payload)

    def _deliver(self, body: bytes, headers: dict[str, str], replay: bool) -> None:
        delivery = headers["X-GitHub-Delivery"]
        status = 0
        for attempt in range(5):  # GitHub redelivers a failed delivery
            status, _ = self._post(body, headers)
            if 200 <= status < 300:
                break
            time.sleep(0.5 * (attempt + 1))
        with self.sent.lock:
            self.sent.good[delivery] = status
        if replay:
            time.sleep(self.rng.uniform(0, 1.0))
            status, answer = self._post(body, headers)
            with self.sent.lock:
                self.sent.replays.setdefault(delivery, []).append(status)
                # What the app said it did with it ("duplicate": nothing); a replay it never
                # answered cannot have been applied twice.
                said = str(answer.get("status")) if 200 <= status < 300 else "no answer"
                self.sent.replay_answers[said] += 1

    def _bad(self, event: str, payload: dict[str, Any]) -> None:
        delivery = self._next_id("bad")
        kind = self.rng.choice(
            ["wrong secret", "no signature", "body changed", "not JSON", "bad PR number"]
        )
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": self._sign(body),
        }
        if kind == "wrong secret":
            headers["X-Hub-Signature-256"] = self._sign(body, "not-the-secret")
        elif kind == "no signature":
            del headers["X-Hub-Signature-256"]
        elif kind == "body changed":  # signed, then tampered with on the way
            body = body.replace(b'"number": ', b'"number": 1')
        elif kind == "not JSON":
            body = body[: len(body) // 2]  # truncated, signed as sent
            headers["X-Hub-Signature-256"] = self._sign(body)
        else:
            broken = json.loads(body)
            broken["pull_request"] = {"number": "1; DROP TABLE"}
            headers["X-GitHub-Event"] = "pull_request"
            body = json.dumps(broken).encode()
            headers["X-Hub-Signature-256"] = self._sign(body)
        status, _ = self._post(body, headers)
        with self.sent.lock:
            self.sent.bad[delivery] = (kind, status)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


# --- the humans and CI -------------------------------------------------------------------


class Humans:
    """CI turns every PR green; reviewers approve every PR but the held ones, a moment after
    it appears; each change is announced by a webhook, as GitHub would."""

    def __init__(self, fake: SoakFake, sender: WebhookSender, rng: random.Random) -> None:
        self.fake = fake
        self.sender = sender
        self.rng = rng
        self.seen: dict[int, float] = {}
        self.replay_share = 0.2
        self.bad_share = 0.1

    def step(self) -> None:
        now = time.monotonic()
        with self.fake.state.lock:
            pulls = [
                (p.number, p.title, p.head_sha, set(p.checks), [s for _, s in p.reviews])
                for p in self.fake.state.repos[REPO].pulls.values()
                if p.state == "open"
            ]
        repository = {"full_name": REPO}
        for number, title, sha, checks, reviews in pulls:
            first = self.seen.setdefault(number, now)
            if "ci" not in checks:
                self.fake.set_check(REPO, number, "ci", "success")
                self.sender.send(
                    "check_run",
                    {
                        "action": "completed",
                        "repository": repository,
                        "check_run": {"head_sha": sha, "pull_requests": [{"number": number}]},
                    },
                    replay_share=self.replay_share,
                    bad_share=self.bad_share,
                )
            elif HELD not in title and "APPROVED" not in reviews and now - first > 1.0:
                self.fake.approve(REPO, number)
                self.sender.send(
                    "pull_request_review",
                    {
                        "action": "submitted",
                        "repository": repository,
                        "pull_request": {"number": number},
                        "review": {"state": "approved"},
                    },
                    replay_share=self.replay_share,
                    bad_share=self.bad_share,
                )


# --- processes ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    """This process's database, for the children (a test database too)."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@dataclass
class Worker:
    token: str
    proc: subprocess.Popen[bytes]
    started: float


class Workers:
    def __init__(self, count: int, env: dict[str, str], town_id: int, logs: Path) -> None:
        self.env = env
        self.town_id = town_id
        self.logs = logs
        self.slots: list[Worker] = []
        self.exits: Counter[str] = Counter()  # "SIGKILL", "exit 0", ...
        for i in range(count):
            self.slots.append(self._start(f"soak-worker-{i}"))

    def _start(self, token: str) -> Worker:
        with (self.logs / f"{token}.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "soak", "--as-worker", str(self.town_id)],
                cwd=REPO_ROOT,
                env={**self.env, "GITHUB_TOKEN": token},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Worker(token, proc, time.monotonic())

    def pids(self) -> dict[str, int]:
        return {w.token: w.proc.pid for w in self.slots}

    def restart_dead(self) -> None:
        for i, worker in enumerate(self.slots):
            code = worker.proc.poll()
            if code is None:
                continue
            self.exits["SIGKILL" if code == -signal.SIGKILL else f"exit {code}"] += 1
            self.slots[i] = self._start(worker.token)

    def kill_one(self, rng: random.Random) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(rng.choice(self.slots).proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        for worker in self.slots:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.slots:
            try:
                worker.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()


def _worker_loop(town_id: int) -> None:
    """One worker: the reconciler tick and the feedback check of the soak's town, over and
    over, until SIGTERM or its parent is gone."""
    from gastown.feedback.checks import check_prs
    from gastown.reconciler.tick import reconcile_towns

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:
        try:
            reconcile_towns(town_ids=[town_id])
            check_prs(town_ids=[town_id])
        except Exception as error:  # a worker that dies on an error is restarted anyway
            print(f"soak worker: {type(error).__name__}: {error}", flush=True)
            close_old_connections()
            time.sleep(0.5)
        stop.wait(0.2)


# --- the command -------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    value: str
    expected: str = ""
    ok: bool = True


class Command(BaseCommand):
    help = "Run workers against faults, kills and webhooks; print the invariants (README)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--duration", type=float, default=300, help="Seconds of faults.")
        parser.add_argument("--workers", type=int, default=4, help="Worker processes.")
        parser.add_argument("--mrs", type=int, default=300, help="Issue beads, one MR each.")
        parser.add_argument("--convoys", type=int, default=6, help="Review-then-land convoys.")
        parser.add_argument(
            "--fault-rate", type=float, default=0.05, help="Share of GitHub requests faulted."
        )
        parser.add_argument(
            "--kill-rate", type=float, default=10, help="Worker SIGKILLs per minute."
        )
        parser.add_argument(
            "--landing-kills",
            type=float,
            default=0.5,
            help="Share of landing PR openings whose worker is killed right after GitHub's 201.",
        )
        parser.add_argument(
            "--held-share", type=float, default=0.2, help="Share of PRs no human approves."
        )
        parser.add_argument(
            "--drain", type=float, default=420, help="Seconds to finish after the faults stop."
        )
        parser.add_argument("--outages", type=int, default=3, help="Town-wide outage windows.")
        parser.add_argument("--outage-seconds", type=float, default=8)
        parser.add_argument("--seed", type=int, default=None, help="Random seed (default: new).")
        parser.add_argument(
            "--quick",
            action="store_true",
            help="CI size: 55 s of faults, 3 workers, 60 MRs, 3 convoys, 120 s of drain.",
        )
        parser.add_argument("--as-worker", type=int, metavar="TOWN_ID", help=_internal())

    def handle(self, *args: Any, **options: Any) -> None:
        if options["as_worker"]:
            _worker_loop(options["as_worker"])
            return
        values = {k: options[k] for k in Options.__dataclass_fields__ if k != "seed"}
        if options["quick"]:
            values.update(QUICK)
        _check(values)
        if connection.vendor != "postgresql":
            raise CommandError(
                "The soak needs PostgreSQL: several processes write to one database at once "
                "(set DATABASE_URL)."
            )
        seed = options["seed"] if options["seed"] is not None else secrets.randbelow(10**6)
        opts = Options(**values, seed=seed)
        ok = self._run(opts)
        if not ok:
            raise CommandError("The soak broke an invariant (see the table).")

    # --- the run ---------------------------------------------------------------------------

    def _run(self, opts: Options) -> bool:
        rng = random.Random(opts.seed)
        logs = Path(tempfile.mkdtemp(prefix="gastown-soak-"))
        self.stderr.write(f"soak: seed {opts.seed}, logs in {logs}")
        fake = SoakFake(random.Random(opts.seed + 1), opts.fault_rate)
        fake.landing_kill_share = opts.landing_kills
        fake.start()
        fake.create_repo(REPO, required_approvals=1, required_checks={"ci"})
        town = self._seed(opts, rng)
        secret = secrets.token_urlsafe(24)
        env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG"}}
        env.update(
            {
                "DATABASE_URL": _database_url(),
                "SECRET_KEY": settings.SECRET_KEY or "soak",
                "GITHUB_API_URL": fake.url,
                "GITHUB_WEBHOOK_SECRET": secret,
                "GASTOWN_SIMULATED_AGENTS": "1",
                "LOG_LEVEL": "WARNING",
                "AGENT_RUNTIME_URL": "",
            }
        )
        web_port = _free_port()
        web = self._start_web(env, web_port, logs)
        workers: Workers | None = None
        sender = WebhookSender(
            f"http://127.0.0.1:{web_port}/webhooks/github", secret, random.Random(opts.seed + 2)
        )
        humans = Humans(fake, sender, random.Random(opts.seed + 3))
        started = time.monotonic()
        try:
            self._wait_for_web(web_port, web)
            workers = Workers(opts.workers, env, town.pk, logs)
            fake.worker_pids = workers.pids()
            fake.faulting = True
            self._fault_phase(opts, rng, fake, workers, humans)
            fake.faulting = False
            fake.outage = None
            fake.kill_inside_armed = 0
            drained = self._drain(opts, town, fake, workers, humans)
        finally:
            fake.faulting = False
            if workers is not None:
                workers.stop()
            sender.close()
            web.send_signal(signal.SIGTERM)
            try:
                web.wait(timeout=15)
            except subprocess.TimeoutExpired:
                web.kill()
        elapsed = time.monotonic() - started
        rows = self._tally(opts, town, fake, workers, sender.sent, drained, elapsed)
        fake.stop()
        self._print(rows, opts)
        return all(r.ok for r in rows)

    def _seed(self, opts: Options, rng: random.Random) -> Town:
        actor = Actor("user:soak")
        town = Town.objects.create(
            slug=f"soak-{opts.seed}-{secrets.token_hex(3)}",
            name=f"Soak {opts.seed}",
            auto_merge=True,
            auto_merge_delay_minutes=0,
            poll_interval_seconds=10,
            code_review=False,
            max_dispatch_attempts=50,
            default_merge_mode=MergeMode.REVIEW_AND_MERGE,
            dispatch_backoff_seconds="2,4,8",
            landing_cooldown_base_seconds=2,
            landing_cooldown_max_seconds=10,
            breaker_threshold=10_000,
        )
        rig = Rig.objects.create(town=town, name="app", repo=REPO, default_branch="main")
        in_convoys = min(opts.mrs, opts.convoys * CONVOY_BEADS)
        held_convoy = opts.convoys > 1  # the first convoy's landing PR waits on a human
        for c in range(opts.convoys):
            held = HELD if held_convoy and c == 0 else ""
            convoy = convoy_create(
                town=town,
                rig=rig,
                title=f"Convoy {c} {held}".strip(),
                merge_mode=MergeMode.REVIEW_THEN_LAND,
                actor=actor,
            )
            for b in range(CONVOY_BEADS):
                if c * CONVOY_BEADS + b < in_convoys:
                    # First in line, so the convoys land while the faults and kills last.
                    bead_create(
                        town=town,
                        rig=rig,
                        convoy=convoy,
                        title=f"C{c} work {b}",
                        priority=Priority.HIGH,
                        actor=actor,
                    )
        for i in range(opts.mrs - in_convoys):
            held = f" {HELD}" if rng.random() < opts.held_share else ""
            bead_create(town=town, rig=rig, title=f"Work {i}{held}", actor=actor)
        return town

    def _start_web(self, env: dict[str, str], port: int, logs: Path) -> subprocess.Popen[bytes]:
        with (logs / "web.log").open("ab") as out:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "python:gastown.gunicorn_conf",
                    "gastown.wsgi",
                ],
                cwd=REPO_ROOT,
                env={**env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "2"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_for_web(self, port: int, web: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if web.poll() is not None:
                raise CommandError("gunicorn exited at start (see web.log in the logs).")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise CommandError("gunicorn did not listen within 60 s.")

    def _fault_phase(
        self,
        opts: Options,
        rng: random.Random,
        fake: SoakFake,
        workers: Workers,
        humans: Humans,
    ) -> None:
        start = time.monotonic()
        end = start + opts.duration
        # Outage windows spread over the run, alternating GraphQL only and everything.
        outages = [
            (start + opts.duration * (i + 1) / (opts.outages + 1), "all" if i % 2 else "graphql")
            for i in range(opts.outages)
        ]
        next_kill = start + rng.expovariate(opts.kill_rate / 60) if opts.kill_rate else end
        while (now := time.monotonic()) < end:
            if outages and now >= outages[0][0]:
                _, scope = outages.pop(0)
                fake.outage = (now + opts.outage_seconds, scope)
            if now >= next_kill:
                if rng.random() < 0.5:
                    fake.kill_inside_armed += 1  # the next side-effect call kills its caller
                else:
                    workers.kill_one(rng)
                next_kill = now + rng.expovariate(opts.kill_rate / 60)
            workers.restart_dead()
            fake.worker_pids = workers.pids()
            humans.step()
            time.sleep(0.2)

    def _drain(
        self, opts: Options, town: Town, fake: SoakFake, workers: Workers, humans: Humans
    ) -> bool:
        """Until nothing is left that could still move without a human, or `drain` s."""
        end = time.monotonic() + opts.drain
        while time.monotonic() < end:
            workers.restart_dead()
            fake.worker_pids = workers.pids()
            humans.step()
            if not _ready_unmerged(fake) and _all_done(town):
                return True
            time.sleep(0.5)
        return False

    # --- counting ------------------------------------------------------------------------

    def _tally(
        self,
        opts: Options,
        town: Town,
        fake: SoakFake,
        workers: Workers | None,
        sent: Deliveries,
        drained: bool,
        elapsed: float,
    ) -> list[Row]:
        rows: list[Row] = []
        for kind, count in sorted(fake.faults_by_kind.items()):
            rows.append(Row(f"faults: {kind}", str(count)))
        rows.append(Row("GitHub requests (fake's log)", str(len(fake.requests))))
        exits = workers.exits if workers else Counter()
        inside = ", ".join(f"{k} {v}" for k, v in sorted(fake.kills_inside.items())) or "none"
        rows.append(Row("worker kills (SIGKILL)", f"{exits['SIGKILL']} (inside: {inside})"))
        other = sum(v for k, v in exits.items() if k != "SIGKILL")
        rows.append(Row("worker exits of their own", str(other), "0", other == 0))
        mrs = MergeRequest.objects.filter(bead__town=town)
        rows.append(
            Row(
                "reconciler ticks / MRs / merged",
                f"{ReconcilerTick.objects.filter(town=town).count()} / {mrs.count()} / "
                f"{mrs.filter(state=MergeRequestState.MERGED).count()}",
            )
        )
        convoys = Convoy.objects.filter(town=town)
        rows.append(
            Row(
                "convoys landed",
                f"{convoys.filter(status=ConvoyStatus.LANDED).count()} of {convoys.count()}",
            )
        )
        replays = sum(len(v) for v in sent.replays.values())
        rows.append(
            Row(
                "webhooks: good / replayed / bad", f"{len(sent.good)} / {replays} / {len(sent.bad)}"
            )
        )

        # Merges per PR: those the fake performed, and merged MRs per PR in the database.
        merge_calls = sum(
            1 for r in list(fake.requests) if r.method == "PUT" and _MERGE_PATH.match(r.path)
        )
        merged_urls = Counter(
            mrs.filter(state=MergeRequestState.MERGED).values_list("pr_url", flat=True)
        )
        most = max([*fake.merges.values(), *merged_urls.values(), 0])
        rows.append(
            Row(
                "merges per PR (max)",
                f"{most} ({sum(fake.merges.values())} merges, {merge_calls} merge calls)",
                "<= 1",
                most <= 1,
            )
        )

        pulls = list(fake.state.repos[REPO].pulls.values())
        # Held PRs are never approved: no merge, and no merge call either (domain.md §1: a
        # PR that waits on a person is parked).
        unapproved_merged = [
            p.number for p in pulls if p.merged and all(s != "APPROVED" for _, s in p.reviews)
        ]
        held = {p.number for p in pulls if HELD in p.title}
        held_calls = sum(
            1
            for r in list(fake.requests)
            if r.method == "PUT" and (m := _MERGE_PATH.match(r.path)) and int(m[2]) in held
        )
        rows.append(
            Row(
                f"PRs merged while waiting on a human / merge calls ({len(held)} held)",
                f"{len(unapproved_merged)} / {held_calls}",
                "0 / 0",
                not unapproved_merged and not held_calls,
            )
        )
        failed = Counter(
            mrs.filter(state=MergeRequestState.FAILED).values_list("bead__failure_code", flat=True)
        )
        rows.append(
            Row(
                "MRs failed (by transient faults or anything else)",
                f"{sum(failed.values())}"
                + (f" ({', '.join(f'{k} {v}' for k, v in failed.items())})" if failed else ""),
                "0",
                not failed,
            )
        )
        landing = Counter(
            mrs.filter(landing_convoy__isnull=False).values_list("landing_convoy", flat=True)
        )
        rows.append(
            Row(
                "duplicate landing MRs",
                str(sum(n - 1 for n in landing.values())),
                "0",
                all(n <= 1 for n in landing.values()),
            )
        )
        landing_prs = Counter(p.head for p in pulls if p.head.startswith("convoy/"))
        dup_landing_prs = sum(n - 1 for n in landing_prs.values())
        rows.append(
            Row("duplicate landing PRs (fake)", str(dup_landing_prs), "0", not dup_landing_prs)
        )
        attempts = Counter(
            BeadEvent.objects.filter(
                town=town, to_status="in_progress", data__has_key="dispatch_attempt"
            ).values_list("bead_ref", "data__dispatch_attempt")
        )
        dup_dispatch = sum(n - 1 for n in attempts.values())
        work_prs = Counter(p.head.split("-", 1)[0] for p in pulls if p.head.startswith("polecat/"))
        dup_work = sum(n - 1 for n in work_prs.values())
        rows.append(
            Row(
                "duplicate dispatches / work PRs per bead",
                f"{dup_dispatch} / {dup_work}",
                "0 / 0",
                not dup_dispatch and not dup_work,
            )
        )

        recorded = Counter(
            WebhookDelivery.objects.filter(delivery_id__in=[*sent.good, *sent.bad]).values_list(
                "delivery_id", flat=True
            )
        )
        accepted = [d for d, status in sent.good.items() if 200 <= status < 300]
        lost = [d for d in accepted if not recorded[d]]
        undelivered = len(sent.good) - len(accepted)
        twice = sum(1 for d in sent.good if recorded[d] > 1) + sum(
            n for said, n in sent.replay_answers.items() if said not in {"duplicate", "no answer"}
        )
        rows.append(
            Row(
                "webhook events lost / applied twice",
                f"{len(lost)} / {twice}"
                + (f" ({undelivered} never answered 2xx)" if undelivered else ""),
                "0 / 0",
                not lost and not twice and not undelivered,
            )
        )
        bad_recorded = sum(1 for d in sent.bad if recorded[d])
        bad_2xx = sum(1 for _, status in sent.bad.values() if 200 <= status < 300)
        rows.append(
            Row(
                f"bad inputs accepted (of {len(sent.bad)})",
                str(bad_recorded + bad_2xx),
                "0",
                not bad_recorded and not bad_2xx,
            )
        )
        stalled = _stalled(town)
        names = dict(
            Bead.objects.filter(
                pk__in=[int(k.rsplit(":", 1)[1]) for k in stalled if k.startswith("stalled:bead:")]
            ).values_list("pk", "title")
        )
        rows.append(
            Row(
                "work left with nothing to move it, no escalation",
                str(len(stalled))
                + (f" ({', '.join(sorted(names.values())[:4])})" if stalled else ""),
                "0",
                not stalled,
            )
        )
        # gastown's PRs: those an MR names and the landing PRs it opens itself. A PR an agent
        # opened and was killed before reporting is the agent's to report again (B3
        # re-dispatches its bead): shown, not held against gastown.
        known = {
            int(url.rsplit("/", 1)[1])
            for url in MergeRequest.objects.filter(bead__town=town)
            .exclude(pr_url="")
            .values_list("pr_url", flat=True)
        }
        ready = _ready_unmerged(fake, for_seconds=SETTLE_SECONDS)
        mine = [n for n in ready if n in known or fake.pull(REPO, n).head.startswith("convoy/")]
        orphans = [n for n in ready if n not in mine]
        rows.append(
            Row(
                f"ready PRs not merged after the faults stopped (ready {SETTLE_SECONDS} s)",
                str(len(mine)) + (f" (#{', #'.join(map(str, mine[:10]))})" if mine else ""),
                "0",
                not mine,
            )
        )
        rows.append(Row("ready PRs of agents killed before they reported", str(len(orphans))))
        in_flight = (
            Bead.objects.filter(town=town, type=BeadType.ISSUE)
            .exclude(status__in=[BeadStatus.CLOSED, BeadStatus.FAILED])
            .exclude(title__contains=HELD)
            .count()
        )
        rows.append(
            Row(
                "beads still in flight at the end (not held)",
                str(in_flight) + (" (a rule moves each later, e.g. B3)" if in_flight else ""),
            )
        )
        rows.append(Row("seconds, start to end", f"{elapsed:.0f}"))
        return rows

    def _print(self, rows: list[Row], opts: Options) -> None:
        self.stdout.write(
            f"soak: {opts.workers} workers, {opts.mrs} MRs, {opts.convoys} convoys, "
            f"{opts.duration:.0f} s of faults at {opts.fault_rate:.0%} per request, "
            f"{opts.kill_rate:g} kills/min, {opts.landing_kills:.0%} of landing PR openings "
            f"killed, seed {opts.seed}"
        )
        header = ("measure", "value", "expected", "")
        table = [(r.measure, r.value, r.expected, "" if r.ok else "VIOLATED") for r in rows]
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
        line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
        self.stdout.write(line)
        self.stdout.write("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for t in table:
            self.stdout.write(
                "| " + " | ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)) + " |"
            )


def _check(values: dict[str, Any]) -> None:
    """Refuse an option out of its range, naming it."""
    limits = {
        "duration": (1, None),
        "workers": (1, 32),
        "mrs": (1, None),
        "convoys": (0, None),
        "fault_rate": (0, 1),
        "kill_rate": (0, None),
        "landing_kills": (0, 1),
        "held_share": (0, 1),
        "drain": (0, None),
        "outages": (0, None),
        "outage_seconds": (0, None),
    }
    for name, (low, high) in limits.items():
        value = values[name]
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise CommandError(f"--{name.replace('_', '-')} must be {span} (got {value}).")


def _internal() -> str:
    return "Internal: run as one of the soak's worker processes for this town."


def _ready_unmerged(fake: SoakFake, *, for_seconds: float = 0) -> list[int]:
    """Open PRs a human approved and CI passed (at least `for_seconds` ago, by the fake's
    clock): nothing but gastown keeps them from merging."""
    before = datetime.now(UTC) - timedelta(seconds=for_seconds)
    with fake.state.lock:
        return sorted(
            p.number
            for p in fake.state.repos[REPO].pulls.values()
            if p.state == "open"
            and p.updated_at <= before
            and HELD not in p.title
            and any(s == "APPROVED" for _, s in p.reviews)
            and (c := p.checks.get("ci")) is not None
            and c.conclusion == "success"
        )


def _all_done(town: Town) -> bool:
    """Every issue bead closed but the held ones', every convoy landed but the held one."""
    left = (
        Bead.objects.filter(town=town, type=BeadType.ISSUE)
        .exclude(status=BeadStatus.CLOSED)
        .exclude(title__contains=HELD)
        .exists()
    )
    convoys = (
        Convoy.objects.filter(town=town)
        .exclude(status=ConvoyStatus.LANDED)
        .exclude(title__contains=HELD)
        .exists()
    )
    return not left and not convoys


def _stalled(town: Town) -> list[str]:
    """What the watchdog (rule X) would call stalled eleven minutes from now if nothing
    happened meanwhile: work no rule moves, waiting on nothing known, not escalated."""
    from gastown.reconciler.tick import reconcile_town
    from gastown.reconciler.watchdog import STALL_AFTER

    later = timezone.now() + STALL_AFTER + timedelta(minutes=1)
    town.refresh_from_db()
    result = reconcile_town(town, now=later, dry_run=True)
    return [
        action.key
        for action in result.planned
        if isinstance(action, a.RaiseEscalation) and action.key.startswith("stalled:")
    ]
