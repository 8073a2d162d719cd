from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from gastown.secrets import decrypt_secret, encrypt_secret


class MergeMethod(models.TextChoices):
    SQUASH = "squash", "Squash"
    MERGE = "merge", "Merge commit"
    REBASE = "rebase", "Rebase"


class MergeMode(models.TextChoices):
    REVIEW_THEN_LAND = "review-then-land", "Review then land"
    REVIEW_AND_MERGE = "review-and-merge", "Review and merge"


def validate_merge_methods(value: str) -> None:
    methods = [m.strip() for m in value.split(",") if m.strip()]
    if not methods:
        raise ValidationError("Name at least one merge method.")
    unknown = [m for m in methods if m not in MergeMethod.values]
    if unknown:
        raise ValidationError(
            f"Unknown merge method(s): {', '.join(unknown)}; use {', '.join(MergeMethod.values)}."
        )
    if len(set(methods)) != len(methods):
        raise ValidationError("A merge method is listed twice.")


def parse_dispatch_backoff(value: str) -> tuple[int, ...]:
    """Seconds to wait before dispatch attempt n+1 after n attempts; the last step repeats."""
    steps = [step.strip() for step in value.split(",")]
    if not all(step.isascii() and step.isdigit() and 0 < int(step) <= 86400 for step in steps):
        raise ValidationError(
            "List whole seconds from 1 to 86400, separated by commas (e.g. 30,60,120,300,600)."
        )
    return tuple(int(step) for step in steps)


def validate_dispatch_backoff(value: str) -> None:
    parse_dispatch_backoff(value)


class TownPermission(models.TextChoices):
    """Custom permissions; each override button needs its own (domain.md §8)."""

    VIEW_DASHBOARD = "view_dashboard", "Can view the town dashboard"
    RECHECK_PR = "recheck_pr", "Can re-check a PR now"
    MERGE_NOW = "merge_now", "Can merge a PR now"
    CLEAR_AWAITING = "clear_awaiting_approval", "Can clear the awaiting-approval flag"
    END_SUPPRESSION = "end_suppression", "Can end a respawn suppression"
    RETRY_LANDING = "retry_landing", "Can retry a convoy's landing"
    REDISPATCH = "redispatch", "Can re-dispatch a bead"
    FAIL_MR = "fail_merge_request", "Can fail a merge request"
    CLOSE_CONVOY = "close_convoy", "Can close a convoy"
    PAUSE_TOWN = "pause_town", "Can pause or resume a town"
    APPROVE_FAKE_PR = "approve_fake_pr", "Can approve a PR on the demo's fake GitHub"


@dataclass(frozen=True)
class EffectiveSettings:
    """Town settings with a rig's overrides applied: every rule reads these."""

    auto_merge: bool
    auto_merge_delay: timedelta
    merge_methods: tuple[str, ...]
    poll_interval: timedelta
    max_dispatch_attempts: int
    max_landing_attempts: int
    code_review: bool
    human_wait_escalation: timedelta
    required_checks_only: bool
    allow_update_branch: bool
    # Town-wide only: the breaker counts the town's failures, and no rig overrides these.
    dispatch_backoff: tuple[timedelta, ...]
    landing_cooldown_base: timedelta
    landing_cooldown_max: timedelta
    breaker_threshold: int
    breaker_window: timedelta
    # GitHub's own features (docs/domain.md §5): its native auto-merge instead of a merge
    # call; the label that holds a PR (empty: none); the label a PR needs to be merged
    # (empty: none needed); deleting the head branch after gastown merged.
    use_native_auto_merge: bool = False
    hold_label: str = ""
    require_label: str = ""
    delete_head_branch: bool = False
    # Deployment-wide (GASTOWN_SAFETY_NET_SECONDS): how often a PR that waits on a person is
    # re-read without a webhook (beads.models.check_interval; docs/domain.md §4).
    safety_net: timedelta = timedelta(0)


class Town(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    member_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="towns"
    )
    member_groups = models.ManyToManyField(Group, blank=True, related_name="towns")

    auto_merge = models.BooleanField(default=True)
    auto_merge_delay_minutes = models.PositiveIntegerField(
        default=0, help_text="Minutes a PR must stay ready before it is merged (0: next check)."
    )
    merge_methods = models.CharField(
        max_length=40,
        default="squash,merge,rebase",
        validators=[validate_merge_methods],
        help_text="Comma-separated order in which merge methods are tried.",
    )
    poll_interval_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(10)]
    )
    max_dispatch_attempts = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1)]
    )
    max_landing_attempts = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    default_merge_mode = models.CharField(
        max_length=20, choices=MergeMode.choices, default=MergeMode.REVIEW_AND_MERGE
    )
    code_review = models.BooleanField(
        default=True, help_text="The rig's refinery reviews each MR before it may merge."
    )
    human_wait_escalation_hours = models.PositiveIntegerField(
        default=24, help_text="Hours a PR may wait on a human before one escalation is raised."
    )
    paused = models.BooleanField(default=False, help_text="Stops all dispatch.")
    use_native_auto_merge = models.BooleanField(
        default=False,
        help_text="Enable GitHub's own auto-merge on a PR that waits (checks, reviews) "
        "instead of merging it when it is ready.",
    )
    hold_label = models.CharField(
        max_length=50,
        blank=True,
        default="gastown:hold",
        help_text="A PR carrying this label is never merged or enqueued (empty: no hold label).",
    )
    require_label = models.CharField(
        max_length=50,
        blank=True,
        default="",
        help_text="Auto-merge only PRs carrying this label (empty: every PR).",
    )
    dispatch_backoff_seconds = models.CharField(
        max_length=200,
        default="30,60,120,300,600",
        validators=[validate_dispatch_backoff],
        help_text="Seconds to wait before re-dispatching after 1, 2, ... attempts, "
        "comma-separated; the last one repeats.",
    )
    landing_cooldown_base_seconds = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="A convoy's next landing attempt waits this many seconds x 2^attempts, "
        "up to the maximum below.",
    )
    landing_cooldown_max_seconds = models.PositiveIntegerField(
        default=1800,
        validators=[MinValueValidator(1)],
        help_text="The longest wait between landing attempts, in seconds.",
    )
    breaker_threshold = models.PositiveIntegerField(
        default=20,
        validators=[MinValueValidator(1)],
        help_text="This many failed dispatches within the window stop dispatch.",
    )
    breaker_window_minutes = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="The window, in minutes, over which failed dispatches are counted.",
    )

    # Secrets: the ciphertext of a token entered in the admin, or the name of an environment
    # variable that holds it. Neither is ever rendered back.
    github_token_encrypted = models.TextField(blank=True, default="", editable=False)
    github_token_env = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=[RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "An environment variable name.")],
        help_text="Name of an environment variable holding this town's GitHub token.",
    )

    # A GitHub App instead of a token: its id and the ciphertext of its private key (PEM),
    # entered in the admin and never rendered back (scm.credentials.resolve_credential).
    github_app_id = models.CharField(
        max_length=20,
        blank=True,
        default="",
        validators=[RegexValidator(r"^[0-9]+$", "The App's numeric id.")],
        help_text="GitHub App id; with its private key, the town authenticates as the App.",
    )
    github_app_private_key_encrypted = models.TextField(blank=True, default="", editable=False)

    # Escalations are also POSTed here (Slack-compatible: {"text": ...}). It embeds a secret in
    # its path on Slack: never logged, nor put in an error message.
    notify_webhook_url = models.URLField(
        max_length=500,
        blank=True,
        default="",
        help_text="Incoming webhook (Slack-compatible) that receives this town's escalations.",
    )

    # Town-level GitHub trouble (no token, 401, 403, rate limit): checks stop until this time
    # instead of failing MRs, and resume by themselves (domain.md §4).
    github_blocked_until = models.DateTimeField(null=True, blank=True)
    github_error = models.TextField(blank=True, default="")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = list(TownPermission.choices)
        constraints = [
            models.CheckConstraint(
                condition=models.Q(poll_interval_seconds__gte=10),
                name="town_poll_interval_min",
            ),
            models.CheckConstraint(
                condition=models.Q(max_dispatch_attempts__gte=1),
                name="town_max_dispatch_attempts_min",
            ),
            models.CheckConstraint(
                condition=models.Q(max_landing_attempts__gte=1),
                name="town_max_landing_attempts_min",
            ),
            models.CheckConstraint(
                condition=~models.Q(dispatch_backoff_seconds=""),
                name="town_dispatch_backoff_not_empty",
            ),
            models.CheckConstraint(
                condition=models.Q(landing_cooldown_base_seconds__gte=1)
                & models.Q(landing_cooldown_max_seconds__gte=1),
                name="town_landing_cooldown_min",
            ),
            models.CheckConstraint(
                condition=models.Q(breaker_threshold__gte=1)
                & models.Q(breaker_window_minutes__gte=1),
                name="town_breaker_min",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def set_github_app_private_key(self, pem: str) -> None:
        self.github_app_private_key_encrypted = encrypt_secret(pem) if pem else ""

    def github_app_private_key(self) -> str | None:
        if self.github_app_private_key_encrypted:
            return decrypt_secret(self.github_app_private_key_encrypted)
        return None

    def set_github_token(self, token: str) -> None:
        self.github_token_encrypted = encrypt_secret(token) if token else ""

    @property
    def has_github_token(self) -> bool:
        return bool(self.github_token_encrypted or self.github_token_env)

    def github_token(self) -> str | None:
        """The town's own token, or None (callers fall back to GITHUB_TOKEN)."""
        if self.github_token_encrypted:
            return decrypt_secret(self.github_token_encrypted)
        if self.github_token_env:
            return os.environ.get(self.github_token_env) or None
        return None

    def effective(self, rig: Rig | None = None) -> EffectiveSettings:
        def pick(rig_value: Any, town_value: Any) -> Any:
            return town_value if rig_value is None or rig_value == "" else rig_value

        r = rig
        return EffectiveSettings(
            auto_merge=pick(r and r.auto_merge, self.auto_merge),
            auto_merge_delay=timedelta(
                minutes=pick(r and r.auto_merge_delay_minutes, self.auto_merge_delay_minutes)
            ),
            merge_methods=tuple(
                m.strip()
                for m in pick(r and r.merge_methods, self.merge_methods).split(",")
                if m.strip()
            ),
            poll_interval=timedelta(
                seconds=pick(r and r.poll_interval_seconds, self.poll_interval_seconds)
            ),
            max_dispatch_attempts=pick(r and r.max_dispatch_attempts, self.max_dispatch_attempts),
            max_landing_attempts=pick(r and r.max_landing_attempts, self.max_landing_attempts),
            code_review=pick(r and r.code_review, self.code_review),
            human_wait_escalation=timedelta(
                hours=pick(r and r.human_wait_escalation_hours, self.human_wait_escalation_hours)
            ),
            required_checks_only=bool(r and r.required_checks_only),
            allow_update_branch=bool(r and r.allow_update_branch),
            use_native_auto_merge=self.use_native_auto_merge,
            hold_label=pick(r and r.hold_label, self.hold_label).strip(),
            require_label=self.require_label.strip(),
            delete_head_branch=bool(r and r.delete_head_branch),
            dispatch_backoff=tuple(
                timedelta(seconds=step)
                for step in parse_dispatch_backoff(self.dispatch_backoff_seconds)
            ),
            landing_cooldown_base=timedelta(seconds=self.landing_cooldown_base_seconds),
            landing_cooldown_max=timedelta(seconds=self.landing_cooldown_max_seconds),
            breaker_threshold=self.breaker_threshold,
            breaker_window=timedelta(minutes=self.breaker_window_minutes),
            safety_net=timedelta(seconds=settings.GASTOWN_SAFETY_NET_SECONDS),
        )


class Rig(models.Model):
    """One repository of a town; its non-null overrides win over the town's settings."""

    town = models.ForeignKey(Town, on_delete=models.CASCADE, related_name="rigs")
    name = models.SlugField(max_length=100)
    repo = models.CharField(
        max_length=200,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$", "A repository as owner/name."
            )
        ],
    )
    default_branch = models.CharField(max_length=200, default="main")
    allow_update_branch = models.BooleanField(
        default=False, help_text="Use GitHub's update-branch for PRs that are behind."
    )
    required_checks_only = models.BooleanField(
        default=False, help_text="Only checks required by branch protection block a merge."
    )

    delete_head_branch = models.BooleanField(
        default=False,
        help_text="Delete a PR's head branch after gastown merged it (never the default "
        "branch, nor a convoy's feature branch still in use).",
    )
    hold_label = models.CharField(
        max_length=50, blank=True, default="", help_text="Overrides the town's hold label."
    )

    auto_merge = models.BooleanField(null=True, blank=True)
    auto_merge_delay_minutes = models.PositiveIntegerField(null=True, blank=True)
    merge_methods = models.CharField(
        max_length=40, blank=True, default="", validators=[validate_merge_methods]
    )
    poll_interval_seconds = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(10)]
    )
    max_dispatch_attempts = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    max_landing_attempts = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    code_review = models.BooleanField(null=True, blank=True)
    human_wait_escalation_hours = models.PositiveIntegerField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["town", "name"]
        constraints = [
            models.UniqueConstraint(fields=["town", "name"], name="rig_unique_name_per_town"),
            models.UniqueConstraint(fields=["town", "repo"], name="rig_unique_repo_per_town"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.repo})"

    @property
    def settings(self) -> EffectiveSettings:
        return self.town.effective(self)
