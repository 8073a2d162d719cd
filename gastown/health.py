"""Liveness and readiness for load balancers and orchestrators.

`/healthz` answers while the process can serve a request: it reads nothing, so a database
outage does not make an orchestrator restart every web process. `/readyz` says whether this
deployment can do its work: the database answers, every migration is applied, the django-q2
broker answers, and the reconciler ticked every town recently (a stale worker fails it).

Both answer JSON without authentication, so neither carries a secret: a failed check names
the exception's class, never its message (a driver's message may hold a host or a user);
the traceback goes to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.db.models import Max
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger(__name__)

Check = dict[str, Any]  # {"ok": bool, ...details}
#: Connecting to Redis must not hang a probe (an orchestrator's probe times out in seconds).
REDIS_TIMEOUT_SECONDS = 2


def database_check() -> Check:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def migrations_check() -> Check:
    """Every migration on disk is recorded as applied (any of them: the executor's plan to the
    leaves would miss one left out below an applied leaf)."""
    loader = MigrationLoader(connections[DEFAULT_DB_ALIAS], ignore_no_migrations=True)
    unapplied = sorted(
        f"{app}.{name}"
        for app, name in loader.graph.nodes
        if (app, name) not in loader.applied_migrations
    )
    if unapplied:
        return {"ok": False, "unapplied": unapplied[:20], "unapplied_count": len(unapplied)}
    return {"ok": True}


def broker_check() -> Check:
    """The ORM broker's queue table can be read; or the Redis broker answers a ping."""
    cluster = settings.Q_CLUSTER
    redis_conf: Any = cluster.get("redis")
    if redis_conf:
        import redis

        timeouts: dict[str, Any] = {
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
        }
        if isinstance(redis_conf, str):
            client = redis.Redis.from_url(redis_conf, **timeouts)
        else:
            client = redis.Redis(**{**timeouts, **redis_conf})
        try:
            client.ping()
        finally:
            client.close()
        return {"ok": True, "broker": "redis"}
    from django_q.models import OrmQ

    list(OrmQ.objects.using(cluster.get("orm", DEFAULT_DB_ALIAS)).values_list("pk")[:1])
    return {"ok": True, "broker": "orm"}


def reconciler_check(now: datetime | None = None) -> Check:
    """Every town ticked within GASTOWN_TICK_STALE_SECONDS; a town that never ticked fails only
    once it is older than that (a new town waits for the schedule's next visit)."""
    from gastown.models import Town

    now = now or timezone.now()
    max_age = timedelta(seconds=settings.GASTOWN_TICK_STALE_SECONDS)
    stale = []
    towns = Town.objects.annotate(last_tick=Max("ticks__started_at")).order_by("slug")
    for slug, created_at, last_tick in towns.values_list("slug", "created_at", "last_tick"):
        since = last_tick or created_at
        if now - since > max_age:
            stale.append(
                {
                    "town": slug,
                    "last_tick": last_tick.isoformat() if last_tick else None,
                    "seconds_since": int((now - since).total_seconds()),
                }
            )
    check: Check = {"ok": not stale, "max_age_seconds": int(max_age.total_seconds())}
    if stale:
        check["stale_towns"] = stale
    return check


def _run(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as error:
        log.warning("readiness check %s failed", name, exc_info=True)
        return {"ok": False, "error": type(error).__name__}


def readiness() -> tuple[bool, dict[str, Check]]:
    checks = {"database": _run("database", database_check)}
    broker_needs_database = not settings.Q_CLUSTER.get("redis")
    for name, check, needs_database in (
        ("migrations", migrations_check, True),
        ("broker", broker_check, broker_needs_database),
        ("reconciler", reconciler_check, True),
    ):
        if needs_database and not checks["database"]["ok"]:
            checks[name] = {"ok": False, "error": "skipped: the database does not answer"}
        else:
            checks[name] = _run(name, check)
    return all(check["ok"] for check in checks.values()), checks


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    ok, checks = readiness()
    body = {"status": "ok" if ok else "fail", "checks": checks}
    return JsonResponse(body, status=200 if ok else 503)
