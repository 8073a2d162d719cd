"""Merge attempts as rows (like healthchecks' Flip): one per merge call with GitHub's answer,
the refusal kind it was classified as, and what it depended on. The five mutable
merge_refused_* columns go; a standing refusal is the MR's merge_refusal (an attempt), what it
waits on (widened as reviewers are asked) and when its hold started. Each old refusal becomes
one attempt row carrying its count of identical refusals in a row."""

import django.db.models.deletion
from django.db import migrations, models


def refusals_to_attempts(apps, schema_editor):
    MergeRequest = apps.get_model("beads", "MergeRequest")
    MergeAttempt = apps.get_model("beads", "MergeAttempt")
    outcome_of = {
        "human_review": "review_required",
        "checks_pending": "checks_required",
        "checks_failing": "checks_required",
    }
    for mr in MergeRequest.objects.exclude(merge_refused_kind=""):
        message = mr.last_error if mr.last_error_kind == "merge_refused" else ""
        attempt = MergeAttempt.objects.create(
            merge_request=mr,
            created_at=mr.merge_refused_at or mr.updated_at,
            head_sha=mr.merge_refused_head_sha,
            outcome=outcome_of.get(mr.merge_refused_kind, mr.merge_refused_kind),
            message=message,
            refusal_kind=mr.merge_refused_kind,
            refusal_waits_on=mr.merge_refused_state,
            repeats=max(mr.merge_refusals, 1),
        )
        MergeRequest.objects.filter(pk=mr.pk).update(
            merge_refusal=attempt,
            merge_refusal_waits_on=mr.merge_refused_state,
            merge_hold_from=mr.merge_refused_at,
        )


def attempts_to_refusals(apps, schema_editor):
    MergeRequest = apps.get_model("beads", "MergeRequest")
    for mr in MergeRequest.objects.filter(merge_refusal__isnull=False).select_related(
        "merge_refusal"
    ):
        MergeRequest.objects.filter(pk=mr.pk).update(
            merge_refused_head_sha=mr.merge_refusal.head_sha,
            merge_refused_kind=mr.merge_refusal.refusal_kind,
            merge_refused_state=mr.merge_refusal_waits_on,
            merge_refused_at=mr.merge_hold_from,
            merge_refusals=mr.merge_refusal.repeats,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("beads", "0006_last_error_kind"),
    ]

    operations = [
        migrations.AddField(
            model_name="mergerequest",
            name="merge_hold_from",
            field=models.DateTimeField(
                blank=True,
                help_text="When the standing refusal's hold started (its attempt, or a retry in flight); empty once a submitted review lifted it.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="mergerequest",
            name="merge_refusal_waits_on",
            field=models.CharField(
                blank=True,
                default="",
                help_text="What the standing refusal depends on besides the head: the review decision and who is asked to review (reviewers asked since join), or each check's state.",
                max_length=500,
            ),
        ),
        migrations.CreateModel(
            name="MergeAttempt",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(help_text="When the call was made.")),
                ("head_sha", models.CharField(max_length=64)),
                ("method", models.CharField(blank=True, default="", max_length=20)),
                (
                    "outcome",
                    models.CharField(
                        help_text="GitHub's answer as scm classified it: merged, review_required, checks_required, head_moved, transient, not_mergeable, method_not_allowed, permanent (or wrong_base, never sent).",
                        max_length=30,
                    ),
                ),
                ("message", models.TextField(blank=True, default="")),
                ("merge_commit_sha", models.CharField(blank=True, default="", max_length=64)),
                (
                    "refusal_kind",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "Nothing about this head (merged, head moved, GitHub failed)"),
                            ("human_review", "A review is missing"),
                            ("checks_pending", "A required check is expected"),
                            ("checks_failing", "A required check fails"),
                            ("not_mergeable", "Not mergeable (final)"),
                            ("permanent", "Refused for good (final)"),
                            ("method_not_allowed", "No configured merge method allowed (final)"),
                            (
                                "wrong_base",
                                "The PR's base is not the MR's target (never sent; final)",
                            ),
                        ],
                        default="",
                        max_length=30,
                    ),
                ),
                (
                    "refusal_waits_on",
                    models.CharField(
                        blank=True,
                        default="",
                        help_text="What the refusal depended on besides the head when GitHub answered.",
                        max_length=500,
                    ),
                ),
                (
                    "repeats",
                    models.PositiveSmallIntegerField(
                        default=1,
                        help_text="This refusal's place in a row of identical ones (same head, kind and state): each one doubles the hold.",
                    ),
                ),
                (
                    "merge_request",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="merge_attempts",
                        to="beads.mergerequest",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="mergerequest",
            name="merge_refusal",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="beads.mergeattempt",
            ),
        ),
        migrations.AddIndex(
            model_name="mergeattempt",
            index=models.Index(
                fields=["merge_request", "-created_at"], name="mergeattempt_mr_time"
            ),
        ),
        migrations.AddConstraint(
            model_name="mergeattempt",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "refusal_kind__in",
                        [
                            "",
                            "human_review",
                            "checks_pending",
                            "checks_failing",
                            "not_mergeable",
                            "permanent",
                            "method_not_allowed",
                            "wrong_base",
                        ],
                    )
                ),
                name="mergeattempt_refusal_kind_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="mergeattempt",
            constraint=models.CheckConstraint(
                condition=models.Q(("repeats__gte", 1)), name="mergeattempt_repeats_positive"
            ),
        ),
        migrations.RunPython(refusals_to_attempts, attempts_to_refusals),
        migrations.RemoveField(
            model_name="mergerequest",
            name="merge_refusals",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="merge_refused_at",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="merge_refused_head_sha",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="merge_refused_kind",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="merge_refused_state",
        ),
    ]
