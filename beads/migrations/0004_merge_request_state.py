"""The merge request's explicit state (docs/architecture.md, "Merge-request state machine"),
carried from its bead's status; `is_active` (a copy of "the bead is not terminal") goes, and
the one-active-landing-MR index reads the state itself."""

from django.db import migrations, models

#: The old MR bead status -> the state. A closed MR bead always meant a merged PR (rule B4
#: closes the issue as merged on it); no MR bead was ever left in_review, but one would be
#: watched like in_progress.
STATE_FOR_BEAD_STATUS = {
    "open": "open",
    "in_progress": "in_progress",
    "in_review": "in_progress",
    "closed": "merged",
    "failed": "failed",
}


def state_from_bead_status(apps, schema_editor):
    MergeRequest = apps.get_model("beads", "MergeRequest")
    for status, state in STATE_FOR_BEAD_STATUS.items():
        MergeRequest.objects.filter(bead__status=status).update(state=state)


def is_active_from_state(apps, schema_editor):
    MergeRequest = apps.get_model("beads", "MergeRequest")
    MergeRequest.objects.update(is_active=False)
    MergeRequest.objects.filter(state__in=["open", "in_progress"]).update(is_active=True)


class Migration(migrations.Migration):
    dependencies = [
        ("beads", "0003_merge_refusal_and_rework_causes"),
        ("gastown", "0004_town_thresholds"),
    ]

    operations = [
        migrations.AddField(
            model_name="mergerequest",
            name="state",
            field=models.CharField(
                choices=[
                    ("open", "Open (queued for review or watching)"),
                    ("in_progress", "In progress (reviewed and watched)"),
                    ("merged", "Merged"),
                    ("failed", "Failed"),
                ],
                default="open",
                max_length=20,
            ),
        ),
        migrations.RunPython(state_from_bead_status, is_active_from_state),
        migrations.RemoveConstraint(
            model_name="mergerequest",
            name="mr_one_active_landing_per_convoy",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="is_active",
        ),
        migrations.AddConstraint(
            model_name="mergerequest",
            constraint=models.CheckConstraint(
                condition=models.Q(("state__in", ["open", "in_progress", "merged", "failed"])),
                name="mr_state_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="mergerequest",
            constraint=models.UniqueConstraint(
                condition=models.Q(
                    ("landing_convoy__isnull", False), ("state__in", ["open", "in_progress"])
                ),
                fields=("landing_convoy",),
                name="mr_one_active_landing_per_convoy",
            ),
        ),
    ]
