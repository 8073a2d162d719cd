"""Side effects recorded before they run (docs/architecture.md, "Side effects and crashes")."""

from __future__ import annotations

from django.db import models


class IntentKind(models.TextChoices):
    OPEN_PR = "open_pr", "Open a pull request"
    CREATE_BRANCH = "create_branch", "Create a feature branch"
    DISPATCH = "dispatch", "Notify an agent of its dispatch"
    MERGE = "merge", "Merge a pull request"
    ENQUEUE = "enqueue", "Add a pull request to its merge queue"


class SideEffectIntent(models.Model):
    """One external side effect, written in the transaction that decides it and marked
    finished after it ran (an outbox). A process that dies inside the call leaves it started
    and unfinished: once its lease passed, the next tick runs it again, and every effect is
    idempotent on repeat (the open PR is looked up first, an existing branch counts as
    created, a dispatch carries its key, a merge re-reads the PR)."""

    town = models.ForeignKey("gastown.Town", on_delete=models.CASCADE, related_name="intents")
    kind = models.CharField(max_length=20, choices=IntentKind.choices)
    #: The merge request (open_pr, merge, enqueue), the convoy (create_branch) or the agent
    #: (dispatch) it acts on.
    target_id = models.PositiveBigIntegerField()
    bead_id = models.PositiveBigIntegerField(null=True, blank=True)
    #: Unique per (kind, target, attempt): what the runtime (dispatch) or the log sees.
    key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=30, blank=True, default="")
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=IntentKind.values), name="intent_kind_valid"
            ),
        ]
        indexes = [
            # What each tick scans: the town's unfinished intents.
            models.Index(
                fields=["town", "id"],
                condition=models.Q(finished_at__isnull=True),
                name="intent_unfinished",
            ),
            models.Index(fields=["kind", "target_id"], name="intent_kind_target"),
        ]

    def __str__(self) -> str:
        state = self.outcome or ("started" if self.started_at else "pending")
        return f"{self.key} ({state})"
