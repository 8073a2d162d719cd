from __future__ import annotations

from django.db import models

from gastown.models.towns import MergeMode


class ConvoyStatus(models.TextChoices):
    OPEN = "open", "Open"
    READY_TO_LAND = "ready_to_land", "Ready to land"
    LANDING = "landing", "Landing"
    LANDED = "landed", "Landed"
    FAILED = "failed", "Failed"
    CLOSED = "closed", "Closed"


TERMINAL_CONVOY_STATUSES = frozenset(
    {ConvoyStatus.LANDED, ConvoyStatus.FAILED, ConvoyStatus.CLOSED}
)


class Convoy(models.Model):
    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="convoys")
    rig = models.ForeignKey(
        "gastown.Rig",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="convoys",
        help_text="The repository of the feature branch (required for review-then-land).",
    )
    title = models.CharField(max_length=300)
    merge_mode = models.CharField(
        max_length=20, choices=MergeMode.choices, default=MergeMode.REVIEW_AND_MERGE
    )
    feature_branch = models.CharField(max_length=200, blank=True, default="")
    feature_branch_created_at = models.DateTimeField(null=True, blank=True)
    feature_branch_failed_at = models.DateTimeField(
        null=True, blank=True, help_text="The last failed attempt to create the feature branch."
    )
    status = models.CharField(
        max_length=20, choices=ConvoyStatus.choices, default=ConvoyStatus.OPEN
    )
    created_by = models.CharField(max_length=200, blank=True, default="")

    landing_attempts = models.PositiveIntegerField(default=0)
    last_landing_attempt_at = models.DateTimeField(null=True, blank=True)
    landed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=100, blank=True, default="")
    failure_message = models.TextField(blank=True, default="")

    # The respawn suppression (domain.md §5 step 4); respawn_suppressed_since is null when none.
    respawn_suppressed_since = models.DateTimeField(null=True, blank=True)
    suppressed_landing_mr = models.ForeignKey(
        "beads.MergeRequest",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    suppressed_pr_url = models.URLField(max_length=500, blank=True, default="")
    suppressed_attempt = models.PositiveIntegerField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ConvoyStatus.values), name="convoy_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(merge_mode__in=MergeMode.values),
                name="convoy_merge_mode_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(merge_mode=MergeMode.REVIEW_THEN_LAND)
                | models.Q(rig__isnull=False),
                name="convoy_review_then_land_needs_rig",
            ),
        ]
        indexes = [
            models.Index(
                fields=["town", "status"],
                condition=models.Q(status__in=["open", "ready_to_land", "landing"]),
                name="convoy_active",
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_CONVOY_STATUSES

    @property
    def is_suppressed(self) -> bool:
        return self.respawn_suppressed_since is not None
