"""Two workers reconcile and check one town at once: one landing MR, one merge (PostgreSQL)."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from beads.models import MergeRequest
from gastown.feedback.checks import check_prs
from gastown.models import ConvoyStatus, MergeMode
from gastown.reconciler.tick import reconcile_towns
from tests.factories import BeadFactory, ConvoyFactory, RigFactory

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/app"
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKER = """
import django
django.setup()
from gastown.feedback.checks import check_prs
from gastown.reconciler.tick import reconcile_towns
for _ in range({rounds}):
    reconcile_towns()
    check_prs()
"""


def test_two_reconcilers_create_one_landing_mr_and_merge_once(fake_github):
    assert connection.vendor == "postgresql"
    fake_github.create_repo(
        REPO, required_approvals=1, required_checks={"ci"}, protected_branches={"main"}
    )
    fake_github.create_branch(REPO, "convoy/billing")
    # The landing PR already exists, green and approved: the product adopts it.
    pull = fake_github.create_pr(REPO, head="convoy/billing", base="main", title="Billing")
    fake_github.set_check(REPO, pull.number, "ci", "success")
    fake_github.approve(REPO, pull.number)

    rig = RigFactory(repo=REPO, code_review=False)
    convoy = ConvoyFactory(
        town=rig.town,
        rig=rig,
        merge_mode=MergeMode.REVIEW_THEN_LAND,
        feature_branch="convoy/billing",
        feature_branch_created_at=timezone.now(),
    )
    for _ in range(3):
        BeadFactory(town=rig.town, rig=rig, convoy=convoy, status="closed")

    s = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gastown.settings",
        "SECRET_KEY": "two-reconcilers",
        "DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}",
        "GITHUB_API_URL": fake_github.url,
        "GITHUB_TOKEN": "test-token",
    }
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER.format(rounds=6)], cwd=ROOT, env=env)
        for _ in range(2)
    ]
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    # The workers ran for a few seconds of real time; when they got in each other's way the
    # next check of the PR is a poll interval away. One later pass stands in for it.
    later = timezone.now() + timedelta(minutes=2)
    for _ in range(2):
        reconcile_towns(now=later)
        check_prs(now=later)

    convoy.refresh_from_db()
    assert convoy.status == ConvoyStatus.LANDED
    assert convoy.landing_attempts == 1
    assert MergeRequest.objects.filter(landing_convoy=convoy).count() == 1
    assert len(fake_github.merge_calls(REPO, pull.number)) == 1
