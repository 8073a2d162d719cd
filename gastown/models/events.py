from __future__ import annotations

from django.db import models


class TelemetryEvent(models.Model):
    """An append-only named record the team lead counts or charts (domain.md §6)."""

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
            models.Index(fields=["town", "name", "created_at"], name="telemetry_town_name_time"),
            # The admin's name filter across every town: one index probe per name.
            models.Index(fields=["name"], name="telemetry_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.label}".strip()


class ReconcilerTick(models.Model):
    """One reconciler tick, kept a day for the dashboard (domain.md §2)."""

    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="ticks")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    actions = models.JSONField(default=dict, blank=True, help_text="Action count by kind.")
    planned = models.PositiveIntegerField(default=0, help_text="Actions the rules planned.")
    # What the tick decided, so the dashboard shows it without re-running the rules (README,
    # "Performance"): [{"kind", "text", "applied"}] for the first PLAN_KEPT planned actions;
    # "applied": false is one the apply step skipped (stale, raced, refused).
    plan = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["town", "-started_at"], name="tick_town_started")]

    def __str__(self) -> str:
        return f"tick {self.town_id} @ {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def action_total(self) -> int:
        return sum(int(v) for v in self.actions.values())

    @property
    def skipped(self) -> int:
        """Planned actions the apply step did not apply."""
        return max(0, self.planned - self.action_total)


class FeedbackCheckRun(models.Model):
    """One feedback check of a town that asked GitHub (docs/domain.md §4): how many PRs it
    checked and the token's GitHub budget afterwards, kept a day like ticks. /metrics reads
    them; nothing else stores the budget (the client learns it from every answer)."""

    town = models.ForeignKey(
        "gastown.Town", on_delete=models.CASCADE, related_name="feedback_checks"
    )
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    checked = models.PositiveIntegerField(default=0, help_text="PR snapshots stored.")
    errors = models.PositiveIntegerField(default=0, help_text="Per-PR errors.")
    github_requests = models.PositiveIntegerField(default=0)
    conditional_requests = models.PositiveIntegerField(
        default=0, help_text="Safety-net REST reads of a PR (If-None-Match when its ETag is known)."
    )
    not_modified = models.PositiveIntegerField(
        default=0, help_text="Conditional reads GitHub answered 304 (free: nothing changed)."
    )
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


class TelemetryDay(models.Model):
    """How many events of one name a town recorded on one closed day (in TIME_ZONE): the
    telemetry page's charts read these instead of counting up to a million events (README,
    "Performance"). Written only by `services.telemetry.telemetry_rollup`."""

    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    name = models.CharField(max_length=80)
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["town", "day", "name"], name="telemetryday_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.name}: {self.count}"


class TelemetryWaitDay(models.Model):
    """The durations (ms, ascending) of the waits on a human a town saw resolved on one
    closed day, once per reviewer the PR waited on, and once in all under reviewer "" (no
    GitHub login is empty): medians and p90s need every value, not a sum."""

    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    reviewer = models.CharField(max_length=200, blank=True)
    durations = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["town", "day", "reviewer"], name="telemetrywaitday_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.reviewer or 'all'}: {len(self.durations)} waits"


class TelemetryRollup(models.Model):
    """How far a town's telemetry is rolled up: every day up to `through`, in `time_zone`
    (a changed TIME_ZONE rolls the days up again). Days after it are counted live."""

    town = models.OneToOneField("gastown.Town", on_delete=models.CASCADE, related_name="+")
    through = models.DateField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"telemetry of {self.town_id} rolled up through {self.through}"
