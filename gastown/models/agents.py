from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models

#: An agent is live when it is working and heartbeated within this window (domain.md §2).
LIVE_HEARTBEAT_WINDOW = timedelta(seconds=90)


class AgentRole(models.TextChoices):
    POLECAT = "polecat", "Polecat"
    REFINERY = "refinery", "Refinery"
    MAYOR = "mayor", "Mayor"


class AgentStatus(models.TextChoices):
    IDLE = "idle", "Idle"
    WORKING = "working", "Working"
    STALLED = "stalled", "Stalled"
    DEAD = "dead", "Dead"


class Agent(models.Model):
    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="agents")
    rig = models.ForeignKey(
        "gastown.Rig", on_delete=models.CASCADE, null=True, blank=True, related_name="agents"
    )
    role = models.CharField(max_length=10, choices=AgentRole.choices)
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=AgentStatus.choices, default=AgentStatus.IDLE)
    # One-to-one: an agent holds at most one bead and a bead at most one agent, in the database.
    hooked_bead = models.OneToOneField(
        "beads.Bead",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="hooked_agent",
    )
    dispatch_attempts = models.PositiveIntegerField(default=0)
    last_dispatch_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["town", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=AgentRole.values), name="agent_role_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=AgentStatus.values), name="agent_status_valid"
            ),
            models.UniqueConstraint(fields=["town", "name"], name="agent_unique_name_per_town"),
            models.UniqueConstraint(
                fields=["rig"],
                condition=models.Q(role=AgentRole.REFINERY),
                name="agent_one_refinery_per_rig",
            ),
        ]
        indexes = [models.Index(fields=["town", "role", "status"], name="agent_town_role_status")]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"

    def is_live(self, now: datetime) -> bool:
        return (
            self.status == AgentStatus.WORKING
            and self.last_heartbeat_at is not None
            and now - self.last_heartbeat_at < LIVE_HEARTBEAT_WINDOW
        )
