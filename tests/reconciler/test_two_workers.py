"""Two reconcilers on one town at once (PostgreSQL: row locks and database uniqueness)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from beads.models import BeadEvent, BeadStatus
from gastown.models import Agent
from tests.factories import BeadFactory, RigFactory

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def _workers(count: int, rounds: int) -> list[subprocess.Popen]:
    env = {**os.environ, "DATABASE_URL": _database_url(), "SECRET_KEY": "two-workers"}
    script = (
        "import django; django.setup()\n"
        "from gastown.reconciler.tick import reconcile_towns\n"
        f"for _ in range({rounds}): reconcile_towns()\n"
    )
    env["DJANGO_SETTINGS_MODULE"] = "gastown.settings"
    return [
        subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env) for _ in range(count)
    ]


def test_two_workers_dispatch_each_bead_exactly_once():
    assert connection.vendor == "postgresql"
    rig = RigFactory()
    beads = [BeadFactory(town=rig.town, rig=rig) for _ in range(25)]
    procs = _workers(2, rounds=6)
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    for bead in beads:
        bead.refresh_from_db()
        assert bead.status == BeadStatus.IN_PROGRESS
        assert bead.dispatch_attempts == 1
        moves = BeadEvent.objects.filter(bead_ref=bead.pk, kind="status", to_status="in_progress")
        assert moves.count() == 1
    assert Agent.objects.count() == 25
    assert Agent.objects.filter(hooked_bead__isnull=False).count() == 25
