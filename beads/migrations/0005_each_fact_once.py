"""Each fact stored once: the PR's repository and number are read from pr_url, waiting on
a human from the blocker, changes requested from the review decision, and the last rework
cause from the list of causes. Their copies go, after carrying what only they held: a PR
known by repository and number alone gets its URL, and a last cause the list lacks (rows from
before the list existed) joins it."""

from django.conf import settings
from django.db import migrations, models


def carry_copies_to_their_source(apps, schema_editor):
    MergeRequest = apps.get_model("beads", "MergeRequest")
    web = settings.GITHUB_WEB_URL.rstrip("/")
    rows = MergeRequest.objects.filter(pr_url="", pr_number__isnull=False).exclude(pr_repo="")
    for mr in rows.only("pk", "pr_repo", "pr_number"):
        url = f"{web}/{mr.pr_repo}/pull/{mr.pr_number}"
        MergeRequest.objects.filter(pk=mr.pk).update(pr_url=url)
    for mr in MergeRequest.objects.exclude(last_rework_cause="").only(
        "pk", "rework_causes", "last_rework_cause"
    ):
        causes = list(mr.rework_causes or [])
        if mr.last_rework_cause not in causes:
            MergeRequest.objects.filter(pk=mr.pk).update(
                rework_causes=[*causes, mr.last_rework_cause]
            )


def copies_from_their_source(apps, schema_editor):
    from scm.errors import ScmError
    from scm.urls import parse_pr_url

    MergeRequest = apps.get_model("beads", "MergeRequest")
    MergeRequest.objects.filter(blocker="human_review").update(awaiting_approval=True)
    MergeRequest.objects.filter(review_decision="CHANGES_REQUESTED").update(changes_requested=True)
    for mr in MergeRequest.objects.only("pk", "pr_url", "rework_causes"):
        fields = {}
        if mr.rework_causes:
            fields["last_rework_cause"] = mr.rework_causes[-1][:200]
        try:
            ref = parse_pr_url(mr.pr_url) if mr.pr_url else None
        except ScmError:
            ref = None
        if ref is not None:
            fields.update(pr_repo=ref.repo, pr_number=ref.number)
        if fields:
            MergeRequest.objects.filter(pk=mr.pk).update(**fields)


class Migration(migrations.Migration):
    dependencies = [
        ("beads", "0004_merge_request_state"),
        ("gastown", "0004_town_thresholds"),
    ]

    operations = [
        migrations.RunPython(carry_copies_to_their_source, copies_from_their_source),
        migrations.RemoveConstraint(
            model_name="mergerequest",
            name="mr_awaiting_approval_is_human_review",
        ),
        migrations.RemoveIndex(
            model_name="mergerequest",
            name="mr_awaiting_approval",
        ),
        migrations.RemoveIndex(
            model_name="mergerequest",
            name="mr_pr",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="awaiting_approval",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="changes_requested",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="last_rework_cause",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="pr_number",
        ),
        migrations.RemoveField(
            model_name="mergerequest",
            name="pr_repo",
        ),
        migrations.AddIndex(
            model_name="mergerequest",
            index=models.Index(
                condition=models.Q(("blocker", "human_review")),
                fields=["waiting_since"],
                name="mr_awaiting_approval",
            ),
        ),
        migrations.AddIndex(
            model_name="mergerequest",
            index=models.Index(
                condition=models.Q(("state__in", ["open", "in_progress"])),
                fields=["state"],
                name="mr_live",
            ),
        ),
    ]
