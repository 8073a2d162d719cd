"""Two feedback checks on one town at once (PostgreSQL: concurrent conditional updates)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from beads.models import BeadStatus
from gastown.feedback.checks import check_prs
from tests.factories import RigFactory, TownFactory
from tests.feedback.conftest import REPO, events, make_mr, reload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_workers_merge_each_ready_pr_exactly_once(fake_github):
    assert connection.vendor == "postgresql"
    town = TownFactory(code_review=False, auto_merge=True, auto_merge_delay_minutes=0)
    rig = RigFactory(town=town, repo=REPO)
    fake_github.create_repo(REPO)
    mrs = [make_mr(fake_github, rig) for _ in range(10)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            check_prs(town_ids=[town.pk])
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    for mr in mrs:
        assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
        assert reload(mr).bead.status == BeadStatus.CLOSED
    assert len(events("pr.merged")) == 10
