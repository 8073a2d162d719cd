"""One version column for optimistic concurrency (replaces comparing 26 columns)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("beads", "0007_merge_attempts"),
    ]

    operations = [
        migrations.AddField(
            model_name="mergerequest",
            name="version",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
