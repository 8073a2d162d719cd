"""Side effects recorded as intents before they run (docs/architecture.md, "Side effects and
crashes").

An intent is written in the transaction that decides its effect, claimed with a conditional
update right before the call (started_at, attempts + 1), and finished after it. A process
killed inside the call leaves it started and unfinished; once INTENT_LEASE has passed since
it started (longer than any call's time-out, so a call still in flight is never doubled),
`intents_due` offers it again and the next tick repeats the effect, which is idempotent.
An intent started MAX_INTENT_ATTEMPTS times without finishing is given up (`intent_abandon`)
so that its failure path runs once instead of the effect stalling silently.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F, Q

from gastown.models import IntentKind, SideEffectIntent, Town

#: How long a started intent belongs to the process that started it: twice the longest call
#: an effect makes (two GitHub requests of 10 s, a runtime notification of 5 s). Short enough
#: that work cut by a crash resumes within a tick or two of a minute.
INTENT_LEASE = timedelta(minutes=1)
MAX_INTENT_ATTEMPTS = 3
#: The calls the feedback check makes itself (gastown/feedback/merge.py).
CHECK_CALLS = (IntentKind.MERGE, IntentKind.ENQUEUE)


def intent_record(
    *,
    town: Town,
    kind: str,
    target_id: int,
    subject: str,
    now: datetime,
    bead_id: int | None = None,
    reuse_unfinished: bool = True,
) -> SideEffectIntent:
    """Record the intent in the caller's transaction, keyed `<kind>:<subject>:<n>` with n
    one more than the last recorded for that subject (the reconciler records them under
    the town's lock; a racing insert of the same key fails on the unique index and its
    action rolls back). An unfinished intent for the same subject is returned instead of a
    second one when `reuse_unfinished` (one PR, one branch at a time); a dispatch is always a
    new decision (another agent, another attempt) and supersedes the unfinished ones."""
    prefix = f"{kind}:{subject}:"
    earlier = SideEffectIntent.objects.filter(key__startswith=prefix)
    if reuse_unfinished:
        pending = earlier.filter(finished_at__isnull=True).first()
        if pending is not None:
            return pending
    else:
        # A new attempt replaces the earlier ones nobody finished (one waiting for its PR, or
        # left by a killed process): only the newest is ever sent.
        earlier.filter(finished_at__isnull=True).update(finished_at=now, outcome="superseded")
    return SideEffectIntent.objects.create(
        town_id=town.pk,
        kind=kind,
        target_id=target_id,
        bead_id=bead_id,
        key=_next_key(prefix),
        created_at=now,
    )


def _next_key(prefix: str) -> str:
    last = (
        SideEffectIntent.objects.filter(key__startswith=prefix)
        .order_by("-pk")
        .values_list("key", flat=True)
        .first()
    )
    return (
        f"{prefix}{int(last.removeprefix(prefix)) + 1 if last else 1}"  # pruned ones were earlier
    )


def intent_begin(
    *, town_id: int, kind: str, target_id: int, subject: str, now: datetime
) -> SideEffectIntent:
    """A call its caller makes now (a merge, an enqueue: the feedback check claimed the MR
    first), recorded started before it is sent."""
    return SideEffectIntent.objects.create(
        town_id=town_id,
        kind=kind,
        target_id=target_id,
        key=_next_key(f"{kind}:{subject}:"),
        created_at=now,
        started_at=now,
        attempts=1,
    )


def intents_unanswered(*, kinds: tuple[str, ...], target_id: int, now: datetime) -> bool:
    """Whether a call of these kinds on this target may still be in flight: started within
    the lease, never finished. Older ones are closed as `no_answer` (their process died; the
    caller reads the target again before any new call)."""
    unfinished = SideEffectIntent.objects.filter(
        kind__in=kinds, target_id=target_id, finished_at__isnull=True
    )
    unfinished.filter(started_at__lte=now - INTENT_LEASE).update(
        finished_at=now, outcome="no_answer", last_error="the process stopped inside the call"
    )
    return unfinished.filter(started_at__gt=now - INTENT_LEASE).exists()


def intents_due(*, town: Town, now: datetime) -> list[SideEffectIntent]:
    """The town's unfinished intents nobody runs: never started, or started by a process
    whose lease has passed (it died inside the call, or its answer never came)."""
    return list(
        SideEffectIntent.objects.filter(town=town, finished_at__isnull=True).filter(
            Q(started_at__isnull=True) | Q(started_at__lte=now - INTENT_LEASE)
        )
    )


def intent_claim(*, intent: SideEffectIntent, now: datetime) -> bool:
    """Take the intent for one run, conditionally on the start it was read with: of two
    workers, one runs it."""
    claimed = SideEffectIntent.objects.filter(
        pk=intent.pk, finished_at__isnull=True, started_at=intent.started_at
    ).update(started_at=now, attempts=F("attempts") + 1)
    if claimed != 1:
        return False
    intent.started_at = now
    intent.attempts += 1
    return True


def intent_finish(
    *, intent: SideEffectIntent, now: datetime, outcome: str, error: str = ""
) -> None:
    SideEffectIntent.objects.filter(pk=intent.pk, finished_at__isnull=True).update(
        finished_at=now, outcome=outcome[:30], last_error=error
    )
    intent.finished_at, intent.outcome, intent.last_error = now, outcome[:30], error


def intent_defer(*, intent: SideEffectIntent) -> None:
    """Give the claim back without running (what the effect waits for is not there yet): the
    next tick offers it again, and the deferral counts no attempt."""
    SideEffectIntent.objects.filter(pk=intent.pk, finished_at__isnull=True).update(
        started_at=None, attempts=F("attempts") - 1
    )
    intent.started_at = None
    intent.attempts -= 1


def intent_exhausted(intent: SideEffectIntent) -> bool:
    """Started MAX_INTENT_ATTEMPTS times and never finished: each run died inside the call."""
    return intent.started_at is not None and intent.attempts >= MAX_INTENT_ATTEMPTS
