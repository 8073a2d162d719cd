from __future__ import annotations

from django.db import models


class TownEventKind(models.TextChoices):
    AGENT_REPORT = "agent_report", "Agent report"
    PR_STATE_CHANGED = "pr_state_changed", "PR state changed"
    WEBHOOK_RECEIVED = "webhook_received", "Webhook received"
    BEAD_CANCELLED = "bead_cancelled", "Bead cancelled"
    RECHECK_REQUESTED = "recheck_requested", "Re-check requested"


class TownEvent(models.Model):
    """A queued input for the reconciler (SPEC §7)."""

    MAX_ATTEMPTS = 5

    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30, choices=TownEventKind.choices)
    # Deleting a bead or an agent deletes its queued events (SPEC §7).
    bead = models.ForeignKey(
        "beads.Bead", on_delete=models.CASCADE, null=True, blank=True, related_name="town_events"
    )
    agent = models.ForeignKey(
        "gastown.Agent",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="town_events",
    )
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    parked_at = models.DateTimeField(null=True, blank=True)
    warning = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=TownEventKind.values), name="townevent_kind_valid"
            )
        ]
        indexes = [
            # The drain scans exactly these rows.
            models.Index(
                fields=["town", "created_at"],
                condition=models.Q(processed_at__isnull=True, parked_at__isnull=True),
                name="townevent_pending",
            ),
            models.Index(fields=["processed_at"], name="townevent_processed"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"

    @property
    def state(self) -> str:
        if self.parked_at:
            return "parked"
        if self.processed_at:
            return "processed"
        return "pending"


class TelemetryEvent(models.Model):
    """An append-only named record the team lead counts or charts (SPEC §6)."""

    name = models.CharField(max_length=80)
    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="telemetry")
    rig = models.ForeignKey(
        "gastown.Rig", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    bead = models.ForeignKey(
        "beads.Bead", on_delete=models.SET_NULL, null=True, blank=True, related_name="telemetry"
    )
    convoy = models.ForeignKey(
        "gastown.Convoy",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="telemetry",
    )
    label = models.CharField(max_length=100, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    duration_ms = models.BigIntegerField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["town", "name", "created_at"], name="telemetry_town_name_time")
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.label}".strip()


class ReconcilerTick(models.Model):
    """One reconciler tick, kept a day for the dashboard (SPEC §2)."""

    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="ticks")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    events_drained = models.PositiveIntegerField(default=0)
    actions = models.JSONField(default=dict, blank=True, help_text="Action count by kind.")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["town", "-started_at"], name="tick_town_started")]

    def __str__(self) -> str:
        return f"tick {self.town_id} @ {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def action_total(self) -> int:
        return sum(int(v) for v in self.actions.values())


class FeedbackCheckRun(models.Model):
    """One feedback check of a town that asked GitHub (SPEC §4): how many PRs it checked and
    the token's GitHub budget afterwards, kept a day like ticks. /metrics reads them; nothing
    else is stored about the budget (the client learns it from every answer)."""

    town = models.ForeignKey(
        "gastown.Town", on_delete=models.CASCADE, related_name="feedback_checks"
    )
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    checked = models.PositiveIntegerField(default=0, help_text="PR snapshots stored.")
    errors = models.PositiveIntegerField(default=0, help_text="Per-PR errors.")
    github_requests = models.PositiveIntegerField(default=0)
    graphql_points = models.PositiveIntegerField(
        default=0, help_text="GraphQL points spent (GitHub's rateLimit.cost, summed)."
    )
    # Which token, never the token: GITHUB_TOKEN, town:<slug> or env:<VARIABLE>.
    token = models.CharField(max_length=120)
    graphql_remaining = models.PositiveIntegerField(null=True, blank=True)
    graphql_reset_at = models.DateTimeField(null=True, blank=True)
    core_remaining = models.PositiveIntegerField(null=True, blank=True)
    core_reset_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["started_at"], name="feedbackcheck_started"),
        ]

    def __str__(self) -> str:
        return f"feedback check {self.town_id} @ {self.started_at:%Y-%m-%d %H:%M:%S}"
