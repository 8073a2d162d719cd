"""The two django-q2 brokers gastown runs on (Q_BROKER: `orm`, the default, or `redis`), with
the two things it asks of a queue beyond django-q2's API:

- a task that waits a few seconds *in the queue*, occupying no worker (the next tick of an
  active town; django-q2 has no delayed task, and its scheduler looks at one-off schedules only
  about every 30 s);
- the tasks still waiting, not yet taken by a worker (so the same tick or check is not queued
  twice: ticks and checks are idempotent, a copy only costs time, but every tick of an active
  town and every due PR asks again).

settings.Q_CLUSTER names the class (`broker_class`), so the workers' pusher, `async_task` and
gastown.scheduling all use the same one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from itertools import chain
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.signing import BadSignature, SignedPackage

# The ORM broker tells a delayed row from a claimed one by how far ahead its lock is, so
# Q_CLUSTER's retry - timeout must exceed the longest delay (a test checks).
from gastown.scheduling import MAX_TASK_DELAY_SECONDS

# How many waiting tasks are looked at; past that the queue is in trouble anyway.
WAITING_SCAN_LIMIT = 500


def _decoded(payloads: Iterator[Any]) -> Iterator[dict[str, Any]]:
    for payload in payloads:
        try:
            yield SignedPackage.loads(payload)
        except (BadSignature, TypeError, ValueError):  # not ours to judge
            continue


class _Delayable:
    """`get_broker().delayed(seconds)` is a broker whose enqueue holds the task back."""

    _delay: timedelta = timedelta(0)

    def delayed(self, seconds: int) -> Any:
        self._delay = timedelta(seconds=min(max(seconds, 0), MAX_TASK_DELAY_SECONDS))
        return self


class OrmBroker(_Delayable, ORM):
    """django-q2's ORM broker. Its workers pull only rows whose `lock` has passed, so a row
    locked a few seconds ahead is a delayed task; a claim moves `lock` to the claim time plus
    Q_CLUSTER's retry, and the row is deleted only when its task is acknowledged, after it ran.
    """

    def enqueue(self, task: str) -> int:
        row = self.get_connection().create(
            key=self.list_key or Conf.CLUSTER_NAME, payload=task, lock=timezone.now() + self._delay
        )
        return row.pk

    def waiting_tasks(self) -> Iterator[dict[str, Any]]:
        """Rows due now or within the longest delay are waiting; a row locked further ahead is
        running, and a running tick asking for the next one must not find itself. A claim
        whose retry time passed is due again (its worker died), so it counts."""
        horizon = timezone.now() + timedelta(seconds=MAX_TASK_DELAY_SECONDS)
        rows = self.get_connection().filter(
            Q(lock__isnull=True) | Q(lock__lte=horizon), key=self.list_key
        )
        return _decoded(row.payload for row in rows[:WAITING_SCAN_LIMIT])


# Moves the delayed tasks that are due to the queue's tail, atomically: with several clusters
# (each has a pusher) a task is moved once.
_RELEASE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, task in ipairs(due) do
    redis.call('ZREM', KEYS[1], task)
    redis.call('RPUSH', KEYS[2], task)
end
return #due
"""


class RedisBroker(_Delayable, Redis):
    """django-q2's Redis broker (a list the pusher pops with BLPOP), plus a sorted set of delayed
    tasks scored by when they are due. Each pusher moves the due ones to the list before it
    pops, so a delayed task runs at most about a second late (BLPOP's wait).

    A popped task is gone from Redis: it is running, and a running tick asking for the next
    one does not find itself. A worker that dies loses its task (Redis has no acknowledgement);
    the once-a-minute schedules are the safety net, as they are for everything else."""

    @property
    def delayed_key(self) -> str:
        return f"{self.list_key}:delayed"

    def enqueue(self, task: str) -> Any:
        if self._delay:
            due = time.time() + self._delay.total_seconds()
            return self.connection.zadd(self.delayed_key, {task: due})
        return super().enqueue(task)

    def dequeue(self) -> Any:
        self.release_due()
        return super().dequeue()

    def release_due(self) -> int:
        return int(
            self.connection.eval(_RELEASE_DUE, 2, self.delayed_key, self.list_key, time.time())
        )

    def waiting_tasks(self) -> Iterator[dict[str, Any]]:
        queued = self.connection.lrange(self.list_key, 0, WAITING_SCAN_LIMIT - 1)
        delayed = self.connection.zrange(self.delayed_key, 0, WAITING_SCAN_LIMIT - 1)
        return _decoded(chain(queued, delayed))

    def purge_queue(self) -> Any:
        self.connection.delete(self.delayed_key)
        return super().purge_queue()
