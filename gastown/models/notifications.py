from __future__ import annotations

from django.db import models


class NotificationChannel(models.TextChoices):
    EMAIL = "email", "Email to the town's team leads"
    WEBHOOK = "webhook", "The town's incoming webhook"


class NotificationSent(models.Model):
    """What was sent (or tried) for one notification on one channel: the unique (key,
    channel) is what makes each escalation go out once (gastown/services/notifications.py)."""

    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="notifications")
    key = models.CharField(max_length=200, help_text='What was notified, e.g. "escalation:42".')
    channel = models.CharField(max_length=20, choices=NotificationChannel.choices)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="", help_text="Why the last attempt failed.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["key", "channel"], name="notification_once"),
            models.CheckConstraint(
                condition=models.Q(channel__in=NotificationChannel.values),
                name="notification_channel_valid",
            ),
        ]

    def __str__(self) -> str:
        state = "sent" if self.sent_at else f"{self.attempts} failed attempt(s)"
        return f"{self.key} by {self.channel}: {state}"
