from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models

from scm.errors import ScmError
from scm.urls import PullRequestRef, parse_pr_url


class BeadType(models.TextChoices):
    ISSUE = "issue", "Issue"
    MERGE_REQUEST = "merge_request", "Merge request"
    ESCALATION = "escalation", "Escalation"


class BeadStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    IN_REVIEW = "in_review", "In review"
    CLOSED = "closed", "Closed"
    FAILED = "failed", "Failed"


TERMINAL_STATUSES = frozenset({BeadStatus.CLOSED, BeadStatus.FAILED})
ACTIVE_STATUSES = [BeadStatus.OPEN, BeadStatus.IN_PROGRESS, BeadStatus.IN_REVIEW]

#: How a bead is named to people: "bd-42", never "#42", which reads as a PR number.
BEAD_REF_PREFIX = "bd-"


def bead_ref(pk: object) -> str:
    """A bead's name for people ("bd-42"), from its id."""
    return f"{BEAD_REF_PREFIX}{pk}"


class Priority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Bead(models.Model):
    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="beads")
    rig = models.ForeignKey(
        "gastown.Rig", on_delete=models.CASCADE, null=True, blank=True, related_name="beads"
    )
    convoy = models.ForeignKey(
        "gastown.Convoy",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="beads",
    )
    type = models.CharField(max_length=20, choices=BeadType.choices, default=BeadType.ISSUE)
    status = models.CharField(max_length=20, choices=BeadStatus.choices, default=BeadStatus.OPEN)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True, default="")
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    labels = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children"
    )
    assignee = models.ForeignKey(
        "gastown.Agent",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_beads",
    )
    dispatch_attempts = models.PositiveIntegerField(default=0)
    last_dispatch_attempt_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(
        max_length=200, blank=True, default="", help_text="The actor: user:NAME, agent:NAME, ..."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    failure_code = models.CharField(max_length=100, blank=True, default="")
    failure_message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(type__in=BeadType.values), name="bead_type_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=BeadStatus.values), name="bead_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(priority__in=Priority.values), name="bead_priority_valid"
            ),
        ]
        indexes = [
            # The reconciler's snapshot reads exactly the non-terminal beads of a town.
            models.Index(
                fields=["town", "type", "status"],
                condition=models.Q(status__in=["open", "in_progress", "in_review"]),
                name="bead_active",
            ),
            models.Index(fields=["town", "status", "-updated_at"], name="bead_town_status"),
            # The admin changelist's order (-created_at, -id): read backwards, it stops at a
            # page instead of sorting every bead (README, "Performance").
            models.Index(fields=["created_at", "id"], name="bead_created"),
        ]

    def __str__(self) -> str:
        return f"{self.ref} {self.title}"

    @property
    def ref(self) -> str:
        return bead_ref(self.pk)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class DependencyKind(models.TextChoices):
    BLOCKS = "blocks", "Blocks"
    PARENT_CHILD = "parent-child", "Parent-child"


class BeadDependency(models.Model):
    """`bead` depends on `depends_on`: for `blocks`, bead cannot start until it is terminal."""

    bead = models.ForeignKey(Bead, on_delete=models.CASCADE, related_name="dependencies")
    depends_on = models.ForeignKey(Bead, on_delete=models.CASCADE, related_name="dependents")
    kind = models.CharField(max_length=20, choices=DependencyKind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "bead dependencies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=DependencyKind.values), name="beaddep_kind_valid"
            ),
            models.CheckConstraint(
                condition=~models.Q(bead=models.F("depends_on")), name="beaddep_not_self"
            ),
            models.UniqueConstraint(fields=["bead", "depends_on", "kind"], name="beaddep_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.bead_id} {self.kind} {self.depends_on_id}"


class BeadEventKind(models.TextChoices):
    CREATED = "created", "Created"
    STATUS = "status", "Status changed"
    ASSIGNED = "assigned", "Assignee changed"
    HOOKED = "hooked", "Hooked"
    UNHOOKED = "unhooked", "Unhooked"
    DISPATCHED = "dispatched", "Dispatched"
    FLAG = "flag", "Flag changed"
    OVERRIDE = "override", "Override"
    NOTE = "note", "Note"


class BeadEvent(models.Model):
    """Append-only audit of a bead; keeps id and title so it outlives the bead."""

    bead = models.ForeignKey(
        Bead,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
        db_constraint=True,
    )
    bead_ref = models.BigIntegerField(help_text="The bead's id, kept after deletion.")
    bead_title = models.CharField(max_length=300)
    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="bead_events")
    kind = models.CharField(max_length=20, choices=BeadEventKind.choices)
    from_status = models.CharField(max_length=20, blank=True, default="")
    to_status = models.CharField(max_length=20, blank=True, default="")
    actor = models.CharField(max_length=200, help_text="reconciler, user:NAME, agent:NAME, webhook")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=BeadEventKind.values), name="beadevent_kind_valid"
            )
        ]
        indexes = [models.Index(fields=["bead_ref", "-created_at"], name="beadevent_bead_time")]

    def __str__(self) -> str:
        return f"{self.kind} on {bead_ref(self.bead_ref)} by {self.actor}"


class Blocker(models.TextChoices):
    """What a PR waits on (domain.md §4); empty before the first successful check."""

    NONE = "", "Not checked yet"
    MERGED = "merged", "Merged"
    CLOSED = "closed", "Closed"
    DRAFT = "draft", "Draft"
    CONFLICT = "conflict", "Conflict"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    CHECKS_FAILING = "checks_failing", "Checks failing"
    CHECKS_PENDING = "checks_pending", "Checks pending"
    THREADS = "threads", "Unresolved threads"
    HUMAN_REVIEW = "human_review", "Waiting on a human"
    BEHIND = "behind", "Behind base"
    UNKNOWN = "unknown", "Unknown"
    # The base branch takes PRs through GitHub's merge queue (a merge call is refused).
    MERGE_QUEUE = "merge_queue", "Goes through the merge queue"
    QUEUED = "queued", "Queued for merge"
    HELD_BY_LABEL = "held_by_label", "Held by a label"
    READY = "ready", "Ready"


#: Blockers under which the PR is "waiting" and no rule may fail or replace its MR (domain.md §3).
WAITING_BLOCKERS = frozenset(
    {
        Blocker.HUMAN_REVIEW,
        Blocker.CHECKS_PENDING,
        Blocker.UNKNOWN,
        # GitHub's merge queue merges it; a hold label waits for the person who set it.
        Blocker.QUEUED,
        Blocker.HELD_BY_LABEL,
    }
)

#: Blockers whose next change can only come from a person or a push: a review, a label, a
#: push of new commits, a draft marked ready. Each of those sends GitHub a webhook (which
#: makes the PR due at once) and changes the PR's REST representation (which a conditional
#: request sees for free), so these PRs are re-read only at the safety-net interval
#: (docs/domain.md §4, "Cadence"). Everything else (checks running, GitHub still computing
#: mergeability, ready to merge, in the merge queue, never read) can change by itself and is
#: re-read at the poll interval.
SAFETY_NET_BLOCKERS = frozenset(
    {
        Blocker.HUMAN_REVIEW,
        Blocker.HELD_BY_LABEL,
        Blocker.CHANGES_REQUESTED,
        Blocker.CHECKS_FAILING,
        Blocker.CONFLICT,
        Blocker.DRAFT,
        Blocker.THREADS,
    }
)


#: The share of its interval by which a PR is due early. The check runs on a schedule whose
#: period is the poll interval, and each pass stamps its PRs a little after it was scheduled
#: (queue latency; django-q2's scheduler wakes every 30 s): a pass that starts a second
#: "early" would otherwise leave a PR for a whole extra interval (approval to merge took two
#: minutes at a one-minute poll in 2 of 5 runs).
DUE_EARLY = 0.1


def due_after(interval: timedelta) -> timedelta:
    """How long after its last check a PR read every `interval` is due again: the one rule
    the selection of due PRs and the check's claim of them share."""
    return interval * (1 - DUE_EARLY)


def check_interval(
    blocker: str, *, failing: bool, poll_interval: timedelta, safety_net: timedelta
) -> timedelta:
    """How long after its last check a PR is due again (a webhook or a re-check makes it due
    at once whatever this says): its poll interval, or the safety net when it waits on a
    person, less DUE_EARLY. A PR whose last check failed is asked again at the poll
    interval: what it waits on is not known."""
    if blocker in SAFETY_NET_BLOCKERS and not failing:
        return due_after(max(poll_interval, safety_net))
    return due_after(poll_interval)


#: What GitHub reports first while a reviewer is still awaited (a push re-ran the checks, a
#: thread opened): the wait on the human goes on underneath.
_WAIT_MASKING = frozenset({Blocker.CHECKS_PENDING, Blocker.CHECKS_FAILING, Blocker.THREADS})


def human_wait_goes_on(blocker: str, review_decision: str | None) -> bool:
    """A push re-runs the checks (or a thread opens) while a reviewer is awaited: GitHub then
    reports that first, but it is the same wait (docs/domain.md §6), so waiting_since and rule W's
    clock stay. Only an approval, or GitHub no longer blocking on anything, ends it."""
    return blocker in _WAIT_MASKING and review_decision != "APPROVED"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PASSED = "passed", "Passed"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"


class MergeRequestState(models.TextChoices):
    """The merge request's lifecycle (docs/architecture.md, "Merge-request state machine").

    The state is the one source: the MR bead's status follows it in the same transaction
    (open -> open, in_progress -> in_progress, merged -> closed, failed -> failed), and only
    beads.merge_requests moves it, through its transition table."""

    OPEN = "open", "Open (queued for review or watching)"
    IN_PROGRESS = "in_progress", "In progress (reviewed and watched)"
    MERGED = "merged", "Merged"
    FAILED = "failed", "Failed"


#: Non-terminal states: the PR is watched and the MR may still merge.
ACTIVE_MR_STATES = (MergeRequestState.OPEN, MergeRequestState.IN_PROGRESS)
TERMINAL_MR_STATES = frozenset({MergeRequestState.MERGED, MergeRequestState.FAILED})
#: The MR bead's status for each state.
BEAD_STATUS_FOR_MR_STATE = {
    MergeRequestState.OPEN: BeadStatus.OPEN,
    MergeRequestState.IN_PROGRESS: BeadStatus.IN_PROGRESS,
    MergeRequestState.MERGED: BeadStatus.CLOSED,
    MergeRequestState.FAILED: BeadStatus.FAILED,
}


#: MergeRequest.last_error_kind values of our own (the others are ScmError kinds).
LAST_ERROR_PRE_MERGE_CHECK = "pre_merge_check"
LAST_ERROR_MERGE_REFUSED = "merge_refused"


class MergeRequest(models.Model):
    bead = models.OneToOneField(Bead, on_delete=models.CASCADE, related_name="merge_request")
    source = models.ForeignKey(
        Bead,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="merge_requests",
        help_text="The issue bead this MR lands.",
    )
    landing_convoy = models.ForeignKey(
        "gastown.Convoy",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="landing_merge_requests",
    )
    state = models.CharField(
        max_length=20, choices=MergeRequestState.choices, default=MergeRequestState.OPEN
    )
    adopted = models.BooleanField(
        default=False, help_text="A landing MR that adopted a suppressed PR (no attempt counted)."
    )

    branch = models.CharField(max_length=200)
    target_branch = models.CharField(max_length=200)
    # The one stored fact about which PR: its repository and number are read from it
    # (pr_ref), so a row written anywhere (a fixture, the shell) is checked like any other.
    pr_url = models.URLField("PR URL", max_length=500, blank=True, default="")

    # The last observed PR snapshot.
    pr_state = models.CharField("PR state", max_length=20, blank=True, default="")
    review_decision = models.CharField(max_length=30, blank=True, default="")
    merge_state_status = models.CharField(max_length=30, blank=True, default="")
    mergeable = models.CharField(max_length=20, blank=True, default="")
    is_draft = models.BooleanField(default=False)
    checks_state = models.CharField(max_length=20, blank=True, default="")
    failing_checks = models.JSONField(default=list, blank=True)
    unresolved_threads = models.PositiveIntegerField(default=0)
    blocking_threads = models.PositiveIntegerField(default=0)
    requested_reviewers = models.JSONField(default=list, blank=True)
    # More approvals GitHub requires (PullRequestSnapshot.approvals_missing); null when the
    # count is not known (the token may not read the protection, or none is required).
    approvals_missing = models.PositiveSmallIntegerField(null=True, blank=True)
    # The PR's place in its base branch's merge queue (1 is next); null when not queued.
    queue_position = models.PositiveIntegerField(null=True, blank=True)
    head_sha = models.CharField("head SHA", max_length=64, blank=True, default="")
    snapshot_at = models.DateTimeField(null=True, blank=True)

    # Derived from the snapshot (domain.md §4).
    blocker = models.CharField(max_length=30, choices=Blocker.choices, blank=True, default="")
    waiting_since = models.DateTimeField(null=True, blank=True)
    # What the blocker is about, in words, from the same snapshot: the merge queue and the
    # entry's state, who enabled GitHub's auto-merge, who added the hold label.
    blocker_detail = models.CharField(max_length=200, blank=True, default="")
    wait_escalated_at = models.DateTimeField(null=True, blank=True)

    review_status = models.CharField(
        max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.PENDING
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    # Poll bookkeeping.
    check_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="Set by a webhook or a re-check: due at once."
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # The last check that GitHub answered: a full read (snapshot_at) or a conditional
    # request answered 304, which confirms the PR did not change since pr_etag was read.
    last_successful_check_at = models.DateTimeField(null=True, blank=True)
    # The ETag of the PR's REST representation, read just before the stored snapshot: a PR
    # that waits on a person is asked "changed since?" with it (feedback/checks.py).
    pr_etag = models.CharField(max_length=200, blank=True, default="")
    consecutive_transient_failures = models.PositiveIntegerField(default=0)
    consecutive_malformed_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # What last_error is, for decisions (never its text): an scm.errors.ScmError kind
    # (not_found, transient, invalid_response, unrecognized_url, ...), or one of
    # LAST_ERROR_PRE_MERGE_CHECK and LAST_ERROR_MERGE_REFUSED; empty when last_error is.
    last_error_kind = models.CharField(max_length=30, blank=True, default="")
    # Every rework cause handled so far, oldest first (docs/domain.md §3: once per cause,
    # never once per check; a review in between must not make an old cause new again).
    rework_causes = models.JSONField(default=list, blank=True)

    # The merge refusal that stands (GitHub refused this head in this state): no new attempt
    # until the head or merge_refusal_waits_on changes, or the hold (computed from the
    # attempt rows, gastown.feedback.observe.refusal_hold) is over. The attempt keeps what
    # GitHub said; these two are what changes after it.
    merge_refusal = models.ForeignKey(
        "beads.MergeAttempt", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    merge_refusal_waits_on = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="What the standing refusal depends on besides the head: the review "
        "decision and who is asked to review (reviewers asked since join), or each check's "
        "state.",
    )
    merge_hold_from = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the standing refusal's hold started (its attempt, or a retry in "
        "flight); empty once a submitted review lifted it.",
    )

    auto_merge_ready_since = models.DateTimeField(null=True, blank=True)
    merge_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="A team lead pressed merge now (skips the delay)."
    )
    merged_at = models.DateTimeField(null=True, blank=True)
    merge_commit_sha = models.CharField("merge commit SHA", max_length=64, blank=True, default="")

    # Optimistic concurrency: every write of what the feedback check reads and writes back
    # (the snapshot, the blocker, the wait, the timers and the standing refusal) adds one, so
    # a pass holding an older copy finds its version gone and does not write it back.
    version = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(blocker__in=Blocker.values), name="mr_blocker_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=MergeRequestState.values), name="mr_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(review_status__in=ReviewStatus.values),
                name="mr_review_status_valid",
            ),
            models.UniqueConstraint(
                fields=["landing_convoy"],
                condition=models.Q(state__in=["open", "in_progress"], landing_convoy__isnull=False),
                name="mr_one_active_landing_per_convoy",
            ),
        ]
        indexes = [
            # The awaiting-approval list: exactly the PRs waiting on a human, oldest first.
            models.Index(
                fields=["waiting_since"],
                condition=models.Q(blocker="human_review"),
                name="mr_awaiting_approval",
            ),
            # The feedback check, the reconciler and webhooks read the live MRs.
            models.Index(
                fields=["state"],
                condition=models.Q(state__in=["open", "in_progress"]),
                name="mr_live",
            ),
        ]

    def __str__(self) -> str:
        name = self.pr_name if self.pr_url else bead_ref(self.bead_id)
        return f"{name}: {self.branch} -> {self.target_branch}"

    @property
    def pr_ref(self) -> PullRequestRef | None:
        """The PR's repository and number, read from pr_url; None without a URL or with one
        that is not a pull request's (the feedback check fails such an MR once, saying so)."""
        if not self.pr_url:
            return None
        try:
            return parse_pr_url(self.pr_url)
        except ScmError:
            return None

    @property
    def pr_repo(self) -> str:
        ref = self.pr_ref
        return ref.repo if ref else ""

    @property
    def pr_number(self) -> int | None:
        ref = self.pr_ref
        return ref.number if ref else None

    @property
    def pr_name(self) -> str:
        """How the product names this MR's PR everywhere: `owner/repo#N`, else its URL, else
        the MR bead."""
        ref = self.pr_ref
        if ref is not None:
            return f"{ref.repo}#{ref.number}"
        return self.pr_url or f"MR bead {bead_ref(self.bead_id)}"

    @property
    def convoy(self) -> Any:
        """The convoy it lands for: its own (a landing MR), its bead's, or its source's."""
        if self.landing_convoy_id:
            return self.landing_convoy
        if self.bead.convoy_id:
            return self.bead.convoy
        if self.source_id and self.source is not None and self.source.convoy_id:
            return self.source.convoy
        return None

    @property
    def awaiting_approval(self) -> bool:
        """Waiting on a human (docs/domain.md §4): the blocker says so, nothing else."""
        return self.blocker == Blocker.HUMAN_REVIEW

    @property
    def changes_requested(self) -> bool:
        return self.review_decision == "CHANGES_REQUESTED"

    @property
    def last_rework_cause(self) -> str:
        return self.rework_causes[-1] if self.rework_causes else ""

    @property
    def is_active(self) -> bool:
        """Not terminal: its PR is watched and it may still merge."""
        return self.state in ACTIVE_MR_STATES

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_MR_STATES

    @property
    def is_landing(self) -> bool:
        return self.landing_convoy_id is not None


class MergeRefusalKind(models.TextChoices):
    """What a refused merge call means for its head (docs/domain.md §5)."""

    NONE = "", "Nothing about this head (merged, head moved)"
    HUMAN_REVIEW = "human_review", "A review is missing"
    CHECKS_PENDING = "checks_pending", "A required check is expected"
    CHECKS_FAILING = "checks_failing", "A required check fails"
    NOT_MERGEABLE = "not_mergeable", "Not mergeable (final)"
    PERMANENT = "permanent", "Refused for good (final)"
    METHOD_NOT_ALLOWED = "method_not_allowed", "No configured merge method allowed (final)"
    WRONG_BASE = "wrong_base", "The PR's base is not the MR's target (never sent; final)"
    NO_ANSWER = "no_answer", "GitHub failed to answer (5xx, time-out): backs off"


#: Refusals a retry of the same head will not change: escalated, and not tried again on that
#: head until a team lead presses merge now (or the head or base moves).
FINAL_REFUSALS = frozenset(
    {
        MergeRefusalKind.NOT_MERGEABLE,
        MergeRefusalKind.PERMANENT,
        MergeRefusalKind.METHOD_NOT_ALLOWED,
        MergeRefusalKind.WRONG_BASE,
    }
)


class MergeAttempt(models.Model):
    """One merge call and GitHub's answer (or one we refused to send: wrong base), written
    once and never changed, like healthchecks' Flip. The hold of a standing refusal and its
    back-off are computed from these rows."""

    merge_request = models.ForeignKey(
        MergeRequest, on_delete=models.CASCADE, related_name="merge_attempts"
    )
    created_at = models.DateTimeField(help_text="When the call was made.")
    head_sha = models.CharField("head SHA", max_length=64)
    method = models.CharField(max_length=20, blank=True, default="")
    outcome = models.CharField(
        max_length=30,
        help_text="GitHub's answer as scm classified it: merged, review_required, "
        "checks_required, head_moved, transient, not_mergeable, method_not_allowed, "
        "permanent (or wrong_base, never sent).",
    )
    message = models.TextField(blank=True, default="")
    merge_commit_sha = models.CharField("merge commit SHA", max_length=64, blank=True, default="")
    refusal_kind = models.CharField(
        max_length=30, choices=MergeRefusalKind.choices, blank=True, default=""
    )
    refusal_waits_on = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="What the refusal depended on besides the head when GitHub answered.",
    )
    repeats = models.PositiveSmallIntegerField(
        default=1,
        help_text="This refusal's place in a row of identical ones (same head, kind and "
        "state): each one doubles the hold.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(refusal_kind__in=MergeRefusalKind.values),
                name="mergeattempt_refusal_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(repeats__gte=1), name="mergeattempt_repeats_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["merge_request", "-created_at"], name="mergeattempt_mr_time")
        ]

    def __str__(self) -> str:
        return f"merge of {self.head_sha[:7]}: {self.outcome}"
