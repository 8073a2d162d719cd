"""Decisions read what an MR's last error is from a typed field, never from its text. Old
rows carry it from the text's prefix, the only place it was written: "<ScmError kind>: ..."
by the feedback check and when opening a PR, "pre-merge check failed: ..." and "merge refused
(...)" by auto-merge."""

import re

from django.db import migrations, models

_SCM_KIND = re.compile(r"^([a-z_]{1,30}): ")


def kind_from_text(apps, schema_editor):
    MergeRequest = apps.get_model("beads", "MergeRequest")
    for mr in MergeRequest.objects.exclude(last_error="").only("pk", "last_error"):
        if mr.last_error.startswith("pre-merge check failed:"):
            kind = "pre_merge_check"
        elif mr.last_error.startswith("merge refused ("):
            kind = "merge_refused"
        else:
            match = _SCM_KIND.match(mr.last_error)
            kind = match.group(1) if match else "unknown"
        MergeRequest.objects.filter(pk=mr.pk).update(last_error_kind=kind)


class Migration(migrations.Migration):
    dependencies = [
        ("beads", "0005_each_fact_once"),
    ]

    operations = [
        migrations.AddField(
            model_name="mergerequest",
            name="last_error_kind",
            field=models.CharField(blank=True, default="", max_length=30),
        ),
        migrations.RunPython(kind_from_text, migrations.RunPython.noop),
    ]
