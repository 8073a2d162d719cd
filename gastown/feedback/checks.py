"""The PR feedback check (domain.md §4): the code the task and `manage.py check_prs` run.

Per town and pass: the due MRs (R1) are claimed with one conditional update, GitHub is asked
about them in lean GraphQL batches, every snapshot is stored with one bulk write, and only
the edges (a wait begins or ends, a new rework cause, a merged or closed PR, an error past
its limit) cost a write of their own. So a pass over a thousand unchanged PRs runs the same
few queries as a pass over five, and repeated checks of an unchanged PR record nothing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from beads.audit import Actor
from beads.models import SAFETY_NET_BLOCKERS, BeadStatus, Blocker, MergeRequest, due_after
from beads.services import (
    bead_set_status,
    escalation_open,
    escalation_raise,
    rework_cause_claim,
    rework_cause_release,
    rework_request,
)
from gastown.feedback import merge as auto_merge
from gastown.feedback.budget import pass_budget
from gastown.feedback.observe import OBSERVED_FIELDS, Observation, edge_events, observe
from gastown.feedback.selectors import any_due, due_for_check, may_ask_conditionally, next_due
from gastown.logs import log_context, mr_log_context
from gastown.models import EffectiveSettings, FeedbackCheckRun, Rig, TelemetryEvent, Town
from gastown.scheduling import MAX_TASK_DELAY_SECONDS, enqueue_feedback_check, enqueue_tick
from gastown.services.github import town_credential
from gastown.services.merge_requests import (
    mr_close_merged,
    mr_fail,
    telemetry_event,
)
from scm.client import GitHubClient
from scm.credentials import TOWN_TOKEN, Credential, GitHubAppCredential
from scm.errors import AnswerError, CredentialError, ScmError
from scm.types import PullRequestRef, SnapshotResult
from scm.urls import parse_pr_url

log = logging.getLogger(__name__)

ClientFactory = Callable[[Credential], GitHubClient]

#: Error policy (domain.md §4): this many errors about one PR in a row fail its MR.
MAX_TRANSIENT_FAILURES = 10
MAX_MALFORMED_FAILURES = 3
#: How long a town pauses after a credential error other than a rate limit, at least.
CREDENTIAL_PAUSE = timedelta(minutes=5)
#: A whole-answer fault backs the town's checks off between these (town_back_off).
OUTAGE_BACK_OFF_MIN = timedelta(minutes=1)
OUTAGE_BACK_OFF_MAX = timedelta(minutes=30)
OUTAGE_KEY = "github:outage"
#: The escalations a good answer from GitHub settles: the outage, a spent or throttled budget,
#: a token that failed (town_pause's keys): checks work again, so nothing is left to do.
SETTLED_BY_A_GOOD_ANSWER = (
    OUTAGE_KEY,
    "github:rate_limited",
    "github:secondary_rate_limited",
    "github:no_token",
    "github:unauthorized",
    "github:forbidden",
    "github:token_unreadable",
)

LEARN_ETAG_BLOCKERS = SAFETY_NET_BLOCKERS | {Blocker.NONE}

_FAILED_AT_ONCE = {"unrecognized_url": "unrecognized_url", "not_found": "pr_not_found"}


@dataclass
class CheckSummary:
    towns: int = 0
    towns_paused: int = 0  # skipped: GitHub blocked for the town until a reset or a fix
    due: int = 0
    checked: int = 0  # snapshots stored
    changed: int = 0  # snapshots that changed something
    errors: int = 0  # per-PR errors (counted, not necessarily failing the MR)
    failed: int = 0  # MRs failed (error policy, PR closed unmerged)
    closed: int = 0  # MRs closed because their PR merged (on GitHub or by us)
    reworks: int = 0
    branch_updates: int = 0
    merge_attempts: int = 0
    merged: int = 0
    merge_refused: int = 0
    github_requests: int = 0
    not_modified: int = 0  # PRs GitHub confirmed unchanged with a 304 (no GraphQL read)
    over_budget: int = 0  # towns whose token budget allowed no read this pass
    town_errors: list[str] = field(default_factory=list)

    def moves(self) -> tuple[int, ...]:
        return (self.changed, self.failed, self.closed, self.reworks, self.merged)

    def summary(self) -> str:
        line = (
            f"check_prs: {self.towns} towns ({self.towns_paused} paused), {self.due} due, "
            f"{self.checked} checked ({self.changed} changed), {self.errors} errors, "
            f"{self.failed} failed, {self.closed} closed, {self.reworks} rework, "
            f"{self.branch_updates} branch updates, {self.merged}/{self.merge_attempts} merged, "
            f"{self.merge_refused} refused, {self.github_requests} GitHub requests "
            f"({self.not_modified} not modified)"
        )
        if self.over_budget:
            line += f"; {self.over_budget} towns waiting for their token's budget"
        if self.town_errors:
            line += f"; paused: {'; '.join(self.town_errors)}"
        return line


def default_client_factory(credential: Credential) -> GitHubClient:
    return GitHubClient(credential)


def check_prs(
    *,
    town_ids: list[int] | None = None,
    now: datetime | None = None,
    client_factory: ClientFactory | None = None,
) -> CheckSummary:
    """Check every due PR of the given towns (all towns when None), then auto-merge."""
    now = now or timezone.now()
    factory = client_factory or default_client_factory
    summary = CheckSummary()
    towns = Town.objects.order_by("pk")
    if town_ids is not None:
        towns = towns.filter(pk__in=town_ids)
    for town in towns:
        summary.towns += 1
        before = summary.moves()
        try:
            with log_context(town=town.slug):
                _check_town(town, now=now, factory=factory, summary=summary)
            if summary.moves() != before:
                # A merge, a failure, a new wait or rework: the reconciler acts on it now,
                # not at its next scheduled visit.
                enqueue_tick(town.pk)
            _check_again_when_due(town)
        except Exception:
            # One town's surprise must not stop the others; the schedule comes back.
            with log_context(town=town.slug):
                log.exception("feedback check of town %s failed", town.slug)
            summary.town_errors.append(f"{town.slug}: unexpected error (logged)")
    return summary


#: How far ahead a pass arms the town's next check: the schedule's period.
CHECK_AHEAD = timedelta(minutes=1)


def _check_again_when_due(town: Town) -> None:
    """Queue the town's next check for when its next PR falls due, if that is within the
    schedule's period: the once-a-minute schedule alone (django-q2 wakes it every 30 s) left
    an approved PR for a second poll interval now and then (README, "Performance").
    A PR due now that this pass left (its budget) waits for the schedule: no busy loop."""
    if not settings.GASTOWN_ENQUEUE_TASKS or (
        town.github_blocked_until is not None and town.github_blocked_until > timezone.now()
    ):
        return
    due = next_due(town=town)
    if due is None:
        return
    wait = due - timezone.now()
    if timedelta(0) < wait <= CHECK_AHEAD:
        seconds = min(math.ceil(wait.total_seconds()), MAX_TASK_DELAY_SECONDS)
        enqueue_feedback_check(town.pk, delay_seconds=seconds)


def _check_town(
    town: Town, *, now: datetime, factory: ClientFactory, summary: CheckSummary
) -> None:
    if town.github_blocked_until is not None and town.github_blocked_until > now:
        summary.towns_paused += 1
        return
    # Cheap before the budget: most passes of a quiet town find nothing due.
    if not any_due(town=town, now=now):
        return
    try:
        credential = town_credential(town)
    except CredentialError as error:
        due, shortest, _ = due_for_check(town=town, now=now)
        claimed = _claim(due, now=now, shortest=shortest)
        summary.due += len(claimed)
        town_pause(town, error, now=now, claimed=claimed, summary=summary)
        return
    token = token_label(town, credential)
    budget = pass_budget(town=town, token=token, now=now)
    due, shortest, settings_by_rig = due_for_check(
        town=town, now=now, limit=budget.reads, conditional_limit=budget.conditional
    )
    summary.over_budget += bool(budget.reads == 0 and budget.conditional == 0)
    if not due:
        return
    conditional = {
        mr.pk
        for mr in due
        if may_ask_conditionally(
            mr, now=now, settings=settings_by_rig.get(mr.bead.rig_id) or settings_by_rig[None]
        )
    }
    mrs = _claim(due, now=now, shortest=shortest)
    summary.due += len(mrs)
    if not mrs:
        return
    client = factory(credential)
    started = time.monotonic()
    checked, errors = summary.checked, summary.errors
    asked = 0
    try:
        check = _TownCheck(town, client, now=now, summary=summary, settings=settings_by_rig)
        try:
            asked = check.run(mrs, conditional=conditional)
        except CredentialError as error:
            town_pause(town, error, now=now, claimed=mrs, summary=summary)
    finally:
        summary.github_requests += client.requests_made
        summary.not_modified += client.not_modified
        client.close()
        graphql, core = client.rate_limit.budget("graphql"), client.rate_limit.budget("core")
        FeedbackCheckRun.objects.create(
            town=town,
            started_at=now,
            duration_ms=int((time.monotonic() - started) * 1000),
            checked=summary.checked - checked,
            errors=summary.errors - errors,
            github_requests=client.requests_made,
            conditional_requests=asked,
            not_modified=client.not_modified,
            graphql_points=client.rate_limit.points_spent,
            token=token,
            graphql_remaining=graphql.remaining,
            graphql_reset_at=graphql.reset_at,
            core_remaining=core.remaining,
            core_reset_at=core.reset_at,
        )


def token_label(town: Town, credential: Credential) -> str:
    """Which token a check used, for the metrics and the budget (towns with one label share
    one budget): never the token itself. GitHub limits an App per installation, and an App
    has one installation per account, so an App is labelled by the accounts of the town's
    rigs: towns under one account share its budget."""
    if isinstance(credential, GitHubAppCredential):
        repos = Rig.objects.filter(town=town).values_list("repo", flat=True)
        owners = sorted({repo.split("/", 1)[0].lower() for repo in repos})
        return f"app:{credential.app_id}:{'+'.join(owners)}"[:120]
    if credential.source != TOWN_TOKEN:
        return credential.source
    if town.github_token_encrypted:
        return f"town:{town.slug}"
    return f"env:{town.github_token_env}"


def _claim(due: list[MergeRequest], *, now: datetime, shortest: timedelta) -> list[MergeRequest]:
    """Claim the due MRs with one conditional update (last_checked_at = now): a second
    worker that read the same rows finds them no longer due and claims none of them. Due by
    the selection's own rule (due_after: a PR is due a little early), or a PR found due
    early would be left for a whole extra interval."""
    ids = [mr.pk for mr in due]
    with transaction.atomic():
        MergeRequest.objects.filter(pk__in=ids).filter(
            Q(last_checked_at__isnull=True)
            | Q(last_checked_at__lte=now - due_after(shortest))
            | Q(check_requested_at__isnull=False)
        ).update(last_checked_at=now, check_requested_at=None)
        claimed = set(
            MergeRequest.objects.filter(pk__in=ids, last_checked_at=now).values_list(
                "pk", flat=True
            )
        )
    mrs = [mr for mr in due if mr.pk in claimed]
    for mr in mrs:
        mr.last_checked_at, mr.check_requested_at = now, None
    return mrs


def town_pause(
    town: Town,
    error: CredentialError,
    *,
    now: datetime,
    claimed: list[MergeRequest],
    summary: CheckSummary,
) -> None:
    """A credential or budget error concerns the town (domain.md §4): no MR fails; checks pause
    until the rate-limit reset (or a few minutes, for a fix), one escalation per kind says
    which token was tried and what is missing, and the claimed MRs are checked first when
    checks resume."""
    settings = town.effective(None)
    if error.kind == "rate_limited" and error.reset_at is not None:
        until = error.reset_at
    else:
        until = now + max(settings.poll_interval, CREDENTIAL_PAUSE)
    source = error.source or "the town's token, then GITHUB_TOKEN"
    kind = "secondary_rate_limited" if error.secondary else error.kind
    what = {
        "no_token": "No GitHub token is configured.",
        "unauthorized": "GitHub rejects the token (wrong, expired or revoked).",
        "forbidden": "The token lacks a permission.",
        "rate_limited": "The token's hourly GitHub rate limit is spent.",
        "secondary_rate_limited": (
            "GitHub's secondary rate limit stopped the token (too many requests in a short "
            "time); its hourly budget is not spent."
        ),
        "token_unreadable": "The town's stored GitHub token cannot be decrypted.",
    }.get(kind, "GitHub refused the token.")
    if error.kind == "token_unreadable":
        needed = (
            " SECRET_KEY probably changed since it was saved. Put the old key in "
            "SECRET_KEY_FALLBACKS (then run manage.py rotate_secrets), or enter the town's "
            "GitHub token again."
        )
    elif error.permission:
        needed = f" Missing permission: {error.permission}."
    elif error.kind == "rate_limited":
        needed = ""
    else:
        needed = " It needs read access to pull requests, checks and contents (write to merge)."
    body = (
        f"{what} Token tried: {source}.{needed}\n\nGitHub said: {error.message}\n\n"
        f"No merge request is failed for this. PR checks of {town.name} are paused until "
        f"{until:%Y-%m-%d %H:%M} UTC and resume by themselves after the reset or the fix."
    )
    with transaction.atomic():
        Town.objects.filter(pk=town.pk).update(
            github_blocked_until=until, github_error=error.message[:2000], updated_at=now
        )
        town.github_blocked_until, town.github_error = until, error.message[:2000]
        if claimed:
            # They were not checked: first in line when checks resume.
            MergeRequest.objects.filter(pk__in=[mr.pk for mr in claimed]).update(
                check_requested_at=now
            )
        escalation_raise(
            town=town,
            key=f"github:{kind}",
            title=f"GitHub checks paused for {town.name}: {what}",
            body=body,
            data={"github_error_kind": kind, "token_source": source},
        )
    log.warning(
        "town %s: GitHub checks paused until %s (%s, token from %s)",
        town.slug,
        until.isoformat(),
        error.kind,
        source,
    )
    summary.town_errors.append(f"{town.slug}: {error.kind} until {until:%H:%M:%S}")


def town_back_off(
    town: Town,
    error: ScmError,
    *,
    now: datetime,
    claimed: list[MergeRequest],
    summary: CheckSummary,
) -> None:
    """GitHub's whole answer failed (domain.md §4): no MR fails or is counted; the town's checks
    back off for as long as the outage has lasted so far (so 1, 1, 2, 4, 8... minutes, at
    most OUTAGE_BACK_OFF_MAX) and resume by themselves at the first good answer; one
    escalation per outage, which says when it began and closes when it ends."""
    title = f"GitHub is not answering PR checks for {town.name}"
    body = (
        f"GitHub's answers fail as a whole ({error.kind}): {error.message}\n\n"
        "No merge request is failed for this and no work is re-dispatched. PR checks back "
        "off while it lasts and resume by themselves at GitHub's first good answer; this "
        "escalation then closes."
    )
    with transaction.atomic():
        escalation, _ = escalation_raise(
            town=town,
            key=OUTAGE_KEY,
            title=title,
            body=body,
            data={"github_error_kind": error.kind, "outage_since": now.isoformat()},
        )
        since = datetime.fromisoformat(escalation.metadata.get("outage_since") or now.isoformat())
        back_off = min(max(now - since, OUTAGE_BACK_OFF_MIN), OUTAGE_BACK_OFF_MAX)
        until = now + back_off
        message = f"{error.kind}: {error.message}"[:2000]
        Town.objects.filter(pk=town.pk).update(
            github_blocked_until=until, github_error=message, updated_at=now
        )
        town.github_blocked_until, town.github_error = until, message
        # They were not checked: first in line when checks resume.
        MergeRequest.objects.filter(pk__in=[mr.pk for mr in claimed]).update(check_requested_at=now)
    log.warning(
        "town %s: GitHub's answers fail (%s); checks back off until %s",
        town.slug,
        error.kind,
        until.isoformat(),
    )
    summary.town_errors.append(f"{town.slug}: GitHub {error.kind} until {until:%H:%M:%S}")


class _TownCheck:
    """One pass over one town's claimed MRs."""

    def __init__(
        self,
        town: Town,
        client: GitHubClient,
        *,
        now: datetime,
        summary: CheckSummary,
        settings: dict[int | None, EffectiveSettings],
    ) -> None:
        self.town = town
        self.client = client
        self.now = now
        self.summary = summary
        self._settings = settings

    def settings_for(self, mr: MergeRequest) -> EffectiveSettings:
        return self._settings.get(mr.bead.rig_id) or self._settings[None]

    def run(
        self, mrs: list[MergeRequest], *, conditional: set[int] | frozenset[int] = frozenset()
    ) -> int:
        """Check the claimed MRs; returns how many conditional requests it made."""
        refs: dict[int, PullRequestRef] = {}
        url_errors: dict[int, ScmError] = {}
        for mr in mrs:
            try:
                refs[mr.pk] = _ref(mr)
            except ScmError as error:
                url_errors[mr.pk] = error
        asked, mrs = self._confirm_unchanged(mrs, refs, conditional)
        refs = {mr.pk: refs[mr.pk] for mr in mrs if mr.pk in refs}
        results = self.client.fetch_snapshots(list(refs.values())) if refs else {}
        snapshots = [
            (mr, result.snapshot)
            for mr in mrs
            if mr.pk in refs
            and (result := results.get(refs[mr.pk])) is not None
            and result.snapshot is not None
        ]
        auto_merge.held_in_queue_dequeue(
            snapshots, client=self.client, settings_for=self.settings_for
        )
        removals = auto_merge.queue_removals(snapshots, client=self.client)
        holders = auto_merge.hold_label_events(
            snapshots, client=self.client, settings_for=self.settings_for
        )

        observed: list[tuple[MergeRequest, Observation]] = []
        errored: list[tuple[MergeRequest, ScmError]] = []
        for mr in mrs:
            url_error = url_errors.get(mr.pk)
            result = results.get(refs[mr.pk]) if mr.pk in refs else None
            if url_error is None and result is not None and result.snapshot is not None:
                obs = observe(
                    mr,
                    result.snapshot,
                    settings=self.settings_for(mr),
                    now=self.now,
                    queue_removal=removals.get(mr.pk),
                    hold_label_event=holders.get(mr.pk),
                )
                observed.append((mr, obs))
            else:
                errored.append((mr, url_error or _result_error(result)))
        # GitHub may refuse the token for one PR only (a SAML-protected organisation): still a
        # credential problem (domain.md §4), so the town pauses and that MR is neither failed nor
        # counted toward the error policy; the others' answers are kept.
        refused = [(mr, e) for mr, e in errored if isinstance(e, CredentialError)]
        # A fault of GitHub's whole answer (5xx, time-out, truncated body) is the town's
        # problem, not these PRs': the town backs off, and none of them is counted or failed.
        outage = [(mr, e) for mr, e in errored if isinstance(e, AnswerError)]
        errored = [(mr, e) for mr, e in errored if not isinstance(e, CredentialError | AnswerError)]
        self.summary.checked += len(observed)
        self.summary.errors += len(errored) + len(refused) + len(outage)

        # Observations another worker overtook are dropped: its newer write stands.
        observed = self._store(observed, [*errored, *outage])
        self._follow_up(observed, errored)
        if outage:
            town_back_off(
                self.town,
                outage[0][1],
                now=self.now,
                claimed=[mr for mr, _ in outage],
                summary=self.summary,
            )
        elif not refused:
            self._resume_town()
        if refused:
            refusal = refused[0][1]
            assert isinstance(refusal, CredentialError)
            town_pause(
                self.town,
                refusal,
                now=self.now,
                claimed=[mr for mr, _ in refused],
                summary=self.summary,
            )
        # Ready MRs, and MRs a merge refusal holds whose hold may be over (merge_due decides).
        auto_merge.merge_ready(
            [mr for mr, _ in observed],
            client=self.client,
            now=self.now,
            settings_for=self.settings_for,
            summary=self.summary,
        )
        stored = {mr.pk for mr, _ in observed}
        auto_merge.native_auto_merge(
            [(mr, snapshot) for mr, snapshot in snapshots if mr.pk in stored],
            client=self.client,
            now=self.now,
            settings_for=self.settings_for,
        )
        return asked

    def _confirm_unchanged(
        self,
        mrs: list[MergeRequest],
        refs: dict[int, PullRequestRef],
        conditional: set[int] | frozenset[int],
    ) -> tuple[int, list[MergeRequest]]:
        """Safety-net checks of PRs that wait on a person (docs/domain.md §4, "Cadence"):
        GitHub is asked whether the PR's REST representation changed since its ETag. A 304
        costs no rate limit and the stored snapshot stands (last_successful_check_at moves);
        anything else, an error included, is read in full. PRs that wait on a person and are
        read in full anyway (a webhook, the hourly full read, a first read) are asked too,
        with their ETag when they have one: a 304 keeps it for free, a 200 renews it. It is
        read before the snapshot, so a change in between makes the next answer a 200, never
        a wrong 304.

        Returns the number of REST requests made and the MRs still to read in full."""
        to_read: list[MergeRequest] = []
        confirmed: list[int] = []
        new_etags: dict[int, str] = {}
        asked = 0
        for mr in mrs:
            ref = refs.get(mr.pk)
            # The ETag is learnt for PRs that wait on a person, and on a PR's first read
            # (most PRs wait on a reviewer from the start).
            wanted = mr.pk in conditional or (
                ref is not None
                and mr.blocker in LEARN_ETAG_BLOCKERS
                and self.settings_for(mr).safety_net > self.settings_for(mr).poll_interval
            )
            if ref is None or not wanted:
                to_read.append(mr)
                continue
            asked += 1
            try:
                # The stored ETag even when the PR is read in full anyway: a 304 keeps it
                # for free, where a plain GET would cost a request of the hourly limit.
                changed, etag = self.client.pull_request_changed(ref, mr.pr_etag)
            except CredentialError:
                raise
            except ScmError as error:
                log.info("conditional read of %s failed (%s): reading it in full", ref, error)
                to_read.append(mr)
                continue
            if changed or mr.pk not in conditional:
                to_read.append(mr)
            else:
                confirmed.append(mr.pk)
            if etag != mr.pr_etag:
                new_etags[mr.pk] = etag
        if confirmed:
            MergeRequest.objects.filter(pk__in=confirmed).update(last_successful_check_at=self.now)
        if new_etags:
            changed_rows = [mr for mr in mrs if mr.pk in new_etags]
            for mr in changed_rows:
                mr.pr_etag = new_etags[mr.pk]
            MergeRequest.objects.bulk_update(changed_rows, ["pr_etag"])
        self.summary.checked += len(confirmed)
        return asked, to_read

    def _resume_town(self) -> None:
        town = self.town
        if town.github_blocked_until is not None or town.github_error:
            Town.objects.filter(pk=town.pk).update(
                github_blocked_until=None, github_error="", updated_at=self.now
            )
            town.github_blocked_until, town.github_error = None, ""
            # The outage (or pause) is over: its escalation closes, and the next one backs
            # off anew.
            for key in SETTLED_BY_A_GOOD_ANSWER:
                escalation = escalation_open(town=town, key=key)
                if escalation is not None:
                    bead_set_status(
                        bead=escalation,
                        status=BeadStatus.CLOSED,
                        actor=Actor.reconciler(),
                        note="GitHub answers again; PR checks resumed by themselves.",
                        now=self.now,
                    )
            log.info("town %s: GitHub answers again; checks resumed", town.slug)

    def _store(
        self,
        observed: list[tuple[MergeRequest, Observation]],
        errored: list[tuple[MergeRequest, ScmError]],
    ) -> list[tuple[MergeRequest, Observation]]:
        """Every observation in a few bulk writes: unchanged PRs only get their timestamps.

        A changed MR is written only if its row still holds the version this pass read: another
        worker (a refused merge parking it, a second check claimed through a webhook) may
        have written it meanwhile, and a stale copy must not undo that (a second merge call,
        a second wait detected). Those rows are skipped, with their telemetry and follow-up,
        and asked again at once: the dropped read may be the newer one (a webhook's news, read
        after a pass that read before it stored), so it must not wait for the PR's cadence,
        ten minutes for one waiting on a person. The rows are read once, locked, for all MRs.
        Returns the observations stored (or unchanged)."""
        now = self.now
        to_write = {mr.pk: (mr, obs) for mr, obs in observed if obs.changed}
        read = {pk: mr.version for pk, (mr, _) in to_write.items()}
        changed: list[MergeRequest] = []
        events: list[TelemetryEvent] = []
        for mr, error in errored:
            # A whole-answer fault is about no PR in particular: it counts against none, and
            # the town's github_error says it.
            if not isinstance(error, AnswerError):
                if error.kind == "transient":
                    mr.consecutive_transient_failures += 1
                elif error.kind == "invalid_response":
                    mr.consecutive_malformed_failures += 1
                mr.last_error = f"{error.kind}: {error.message}"[:2000]
                mr.last_error_kind = error.kind[:30]
            mr.auto_merge_ready_since = None  # "continuously ready" is unknown now
            mr.updated_at = now
            mr.version += 1
        with transaction.atomic():
            overtaken = set(read)
            if read:
                rows = (
                    MergeRequest.objects.select_for_update()
                    .filter(pk__in=list(read))
                    .values_list("pk", "version")
                )
                for pk, version in rows:
                    if version == read[pk]:
                        overtaken.discard(pk)
            for pk, (mr, obs) in to_write.items():
                if pk in overtaken:
                    log.info("%s changed meanwhile: this pass's snapshot not stored", mr.pr_name)
                    continue
                if mr.consecutive_transient_failures or mr.consecutive_malformed_failures:
                    mr.last_error = mr.last_error_kind = ""
                for name, value in obs.fields.items():
                    setattr(mr, name, value)
                mr.updated_at = now
                mr.version += 1  # the rows are locked: read + 1
                changed.append(mr)
                events.extend(edge_events(mr, obs, now=now))
            self.summary.changed += len(changed)
            if changed:
                MergeRequest.objects.bulk_update(
                    changed,
                    [*OBSERVED_FIELDS, "last_error", "last_error_kind", "updated_at", "version"],
                )
            observed = [(mr, obs) for mr, obs in observed if mr.pk not in overtaken]
            ok_ids = [mr.pk for mr, _ in observed]
            if ok_ids:
                MergeRequest.objects.filter(pk__in=ok_ids).update(
                    last_successful_check_at=now, snapshot_at=now
                )
            if errored:
                MergeRequest.objects.bulk_update(
                    [mr for mr, _ in errored],
                    [
                        "consecutive_transient_failures",
                        "consecutive_malformed_failures",
                        "last_error",
                        "last_error_kind",
                        "auto_merge_ready_since",
                        "updated_at",
                        "version",
                    ],
                )
            if events:
                TelemetryEvent.objects.bulk_create(events)
            if overtaken:
                MergeRequest.objects.filter(pk__in=overtaken).update(check_requested_at=now)
                transaction.on_commit(lambda: enqueue_feedback_check(self.town.pk))
        for mr, _ in observed:
            mr.last_successful_check_at = mr.snapshot_at = now
        return observed

    def _follow_up(
        self,
        observed: list[tuple[MergeRequest, Observation]],
        errored: list[tuple[MergeRequest, ScmError]],
    ) -> None:
        """The rare per-MR writes and calls: state transitions, rework, branch updates."""
        for mr, obs in observed:
            if mr.bead.is_terminal:
                continue  # a failed landing MR held by a suppression: snapshot only
            with mr_log_context(mr):
                self._follow_up_one(mr, obs)
        for mr, error in errored:
            with mr_log_context(mr):
                self._apply_error_policy(mr, error)

    def _follow_up_one(self, mr: MergeRequest, obs: Observation) -> None:
        if obs.blocker == Blocker.MERGED:
            if mr_close_merged(mr, now=self.now, merge_commit_sha=obs.merge_commit_sha):
                self.summary.closed += 1
        elif obs.blocker == Blocker.CLOSED:
            message = (
                f"{mr.pr_name} was closed without merging. Reopen it and re-check, or "
                "retry the work as a new bead."
            )
            if mr_fail(mr, code="pr_closed", message=message, now=self.now):
                self.summary.failed += 1
        elif obs.rework is not None:
            self._rework(mr, obs)

    def _rework(self, mr: MergeRequest, obs: Observation) -> None:
        rework = obs.rework
        assert rework is not None
        if rework.escalate:
            # Nothing an agent can push fixes it: the team lead hears of it, once per cause.
            with transaction.atomic():
                if rework_cause_claim(mr=mr, cause=rework.cause):
                    escalation_raise(
                        town=self.town,
                        rig=mr.bead.rig,
                        key=f"rework:mr:{mr.pk}:{rework.cause}",
                        title=rework.summary[:300],
                        body=f"{mr.pr_url}: {rework.summary}. Push a new commit, or add the "
                        "PR to the merge queue on GitHub.",
                        data={"merge_request_id": mr.pk, "pr_url": mr.pr_url},
                    )
            return
        if rework.update_branch:
            # Claimed like a rework cause, so it runs once per head SHA.
            if not rework_cause_claim(mr=mr, cause=rework.cause):
                return
            try:
                updated = self.client.update_branch(_ref(mr), head_sha=mr.head_sha)
            except CredentialError:
                raise
            except ScmError as error:
                # Try again at the next check: give the cause back.
                log.info("update-branch of %s failed: %s", mr.pr_name, error)
                rework_cause_release(mr=mr, cause=rework.cause)
                return
            if updated:
                self.summary.branch_updates += 1
                return
            # GitHub declined (nothing to update, head moved...): an agent updates it.
            if rework_request(mr=mr, cause=f"{rework.cause}:rework", summary=rework.summary):
                self.summary.reworks += 1
            return
        if rework_request(mr=mr, cause=rework.cause, summary=rework.summary):
            self.summary.reworks += 1

    def _apply_error_policy(self, mr: MergeRequest, error: ScmError) -> None:
        """domain.md §4, for errors GitHub reports about this PR: a PR that does not exist (or a
        URL that is not one) fails its MR at once; this PR's transient errors after 10 in a
        row, its unreadable answers after 3 in a row, unless it waits on a human: such an MR
        is never failed by a fault that may pass."""
        if mr.bead.is_terminal:
            return
        if error.kind not in _FAILED_AT_ONCE and mr.blocker == Blocker.HUMAN_REVIEW:
            return
        name = mr.pr_name
        code = ""
        message = ""
        if error.kind in _FAILED_AT_ONCE:
            code = _FAILED_AT_ONCE[error.kind]
            message = (
                f"{error.message} Fix the MR's PR URL (or the token's access to the "
                "repository) and retry the work as a new bead."
            )
        elif (
            error.kind == "transient"
            and mr.consecutive_transient_failures >= MAX_TRANSIENT_FAILURES
        ):
            code = "github_unreachable"
            message = (
                f"GitHub failed to answer about {name} {mr.consecutive_transient_failures} "
                f"times in a row (last: {error.message}). Check GitHub's status, then retry "
                "the work as a new bead."
            )
        elif (
            error.kind == "invalid_response"
            and mr.consecutive_malformed_failures >= MAX_MALFORMED_FAILURES
        ):
            code = "github_invalid_response"
            message = (
                f"GitHub's answers about {name} were unreadable "
                f"{mr.consecutive_malformed_failures} times in a row (last: {error.message})."
            )
        if not code:
            return
        poll_failed = telemetry_event(
            mr, "pr.poll_failed", label=error.kind, reason=message, data={"pr_url": mr.pr_url}
        )
        if mr_fail(mr, code=code, message=message, now=self.now, telemetry=[poll_failed]):
            self.summary.failed += 1


def _ref(mr: MergeRequest) -> PullRequestRef:
    return parse_pr_url(mr.pr_url)


def _result_error(result: SnapshotResult | None) -> ScmError:
    if result is not None and result.error is not None:
        return result.error
    return ScmError("invalid_response", "GitHub's answer had nothing for this pull request.")
