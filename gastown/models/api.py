from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A per-town API token (domain.md §8: agents call the API with a per-town token).

    Only a SHA-256 of the token is stored; `prefix` (the token's first characters) finds the
    row so the comparison is one indexed lookup, and shows which token is which in the admin.
    The plain token is shown once, when it is created.
    """

    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="Who uses it, e.g. the agent runtime.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["town", "name"]
        verbose_name = "API token"
        constraints = [
            models.UniqueConstraint(fields=["town", "name"], name="apitoken_unique_name_per_town")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class WebhookDeliveryStatus(models.TextChoices):
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"


class WebhookDelivery(models.Model):
    """One GitHub webhook delivery, kept so a redelivered id is processed once."""

    delivery_id = models.CharField(max_length=100, unique=True)
    event = models.CharField(max_length=60)
    action = models.CharField(max_length=60, blank=True, default="")
    repo = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=20, choices=WebhookDeliveryStatus.choices)
    merge_requests = models.PositiveIntegerField(
        default=0, help_text="Merge requests made due by this delivery."
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=WebhookDeliveryStatus.values),
                name="webhookdelivery_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id}"
