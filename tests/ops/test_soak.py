"""`manage.py soak` (README, "Reliability"): its fake GitHub injects what it says it does, kills
the worker inside a side effect, and a short soak on PostgreSQL keeps every invariant.

The soak itself runs in .ci/run's PostgreSQL pass too, longer (`--quick`)."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from gastown.management.commands.soak import HELD, REPO, SoakFake, _ready_unmerged


@pytest.fixture
def soak_fake():
    fake = SoakFake(random.Random(3), fault_rate=0.0)
    fake.start()
    fake.create_repo(REPO, required_approvals=1, required_checks={"ci"})
    yield fake
    fake.stop()


def _call(fake: SoakFake, method: str, path: str, body: dict | None = None, token: str = "t"):
    request = urllib.request.Request(
        fake.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_fake_kills_the_caller_of_a_side_effect_after_doing_it(soak_fake):
    soak_fake.create_branch(REPO, "feature")
    victim = subprocess.Popen(["sleep", "60"])
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        soak_fake.worker_pids = {"soak-worker-0": victim.pid, "soak-worker-1": bystander.pid}
        soak_fake.kill_inside_armed = 1
        # A read is no side effect: nobody is killed.
        assert _call(soak_fake, "GET", f"/repos/{REPO}", token="soak-worker-0") == 200
        assert victim.poll() is None
        pr = {"head": "feature", "base": "main", "title": "t"}
        status = _call(soak_fake, "POST", f"/repos/{REPO}/pulls", pr, token="soak-worker-0")
        assert status == 201  # GitHub opened it; the caller never hears
        assert victim.wait(timeout=5) == -signal.SIGKILL
        assert [p.head for p in soak_fake.state.repos[REPO].pulls.values()] == ["feature"]
        assert soak_fake.kills_inside == {"open PR": 1}
        assert soak_fake.kill_inside_armed == 0
        # Disarmed: the next side effect kills no one.
        soak_fake.create_branch(REPO, "other")
        other = {"head": "other", "base": "main", "title": "u"}
        assert _call(soak_fake, "POST", f"/repos/{REPO}/pulls", other, token="soak-worker-1")
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        for proc in (victim, bystander):
            proc.kill()
            proc.wait()


def test_the_fake_counts_the_merges_it_performed(soak_fake):
    for head in ("a", "b"):
        soak_fake.create_branch(REPO, head)
        pull = soak_fake.create_pr(REPO, head=head)
        soak_fake.approve(REPO, pull.number)
        soak_fake.set_check(REPO, pull.number, "ci", "success")
    merge = {"merge_method": "squash"}
    assert _call(soak_fake, "PUT", f"/repos/{REPO}/pulls/1/merge", merge) == 200
    assert _call(soak_fake, "PUT", f"/repos/{REPO}/pulls/1/merge", merge) == 405
    # A truncated 200 is no merge: GitHub never got to it.
    soak_fake.add_fault("malformed", method="PUT")
    assert _call(soak_fake, "PUT", f"/repos/{REPO}/pulls/2/merge", merge) == 200
    assert not soak_fake.pull(REPO, 2).merged
    assert soak_fake.merges == {(REPO, 1): 1}


def test_faults_at_a_rate_and_outages_are_injected_and_counted(soak_fake):
    soak_fake.timeout_delay = 0.05  # the kind is counted; the test need not wait 10 s
    soak_fake.faulting = True
    assert _call(soak_fake, "GET", f"/repos/{REPO}") == 200  # rate 0: no fault
    soak_fake.fault_rate = 1.0
    statuses = [_call(soak_fake, "GET", f"/repos/{REPO}") for _ in range(40)]
    assert sum(soak_fake.faults_by_kind.values()) == 40
    assert {"5xx", "malformed/truncated body"} <= set(soak_fake.faults_by_kind)
    assert not set(soak_fake.faults_by_kind) & {"GraphQL errors", "GraphQL time-out"}
    assert {s for s in statuses if s >= 500} <= {500, 502, 503}

    soak_fake.fault_rate = 0.0
    soak_fake.faults_by_kind.clear()
    soak_fake.outage = (time.monotonic() + 30, "graphql")
    assert _call(soak_fake, "POST", "/graphql", {"query": "{ viewer { login } }"}) == 502
    assert _call(soak_fake, "GET", f"/repos/{REPO}") == 200  # REST is up
    soak_fake.outage = (time.monotonic() + 30, "all")
    assert _call(soak_fake, "GET", f"/repos/{REPO}") == 502
    assert soak_fake.faults_by_kind == {"outage (graphql: 502)": 1, "outage (all: 502)": 1}
    soak_fake.faulting = False  # the faults stop
    assert _call(soak_fake, "GET", f"/repos/{REPO}") == 200


def test_a_ready_pr_is_one_approved_and_green_that_no_human_holds(soak_fake):
    for title in ("ready", "no approval", "no ci", f"held {HELD}", "merged"):
        soak_fake.create_branch(REPO, title.replace(" ", "-"))
        pull = soak_fake.create_pr(REPO, head=title.replace(" ", "-"), title=title)
        if title != "no approval":
            soak_fake.approve(REPO, pull.number)
        if title != "no ci":
            soak_fake.set_check(REPO, pull.number, "ci", "success")
        if title == "merged":
            soak_fake.merge_externally(REPO, pull.number)
    assert _ready_unmerged(soak_fake) == [1]


def _table(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| measure"):
            cells = [c.strip() for c in line.split("|")[1:-1]]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_short_soak_keeps_every_invariant():
    """Two workers, 15 s of faults and kills, then 120 s of drain (longer than an intent's
    one-minute lease and a check, so work cut by a kill resumes and what was ready merges).
    Every landing PR opening during the faults is killed right after GitHub's 201."""
    assert connection.vendor == "postgresql"
    out = StringIO()
    args = [
        "--duration=15",
        "--workers=2",
        "--mrs=16",
        "--convoys=2",
        "--fault-rate=0.1",
        "--kill-rate=15",
        "--landing-kills=1.0",
        "--drain=120",
        "--outages=1",
        "--outage-seconds=3",
        "--seed=7",
    ]
    try:
        call_command("soak", *args, stdout=out)
    except CommandError:
        pytest.fail("the soak broke an invariant:\n" + out.getvalue())
    rows = _table(out.getvalue())
    assert not [name for name, cells in rows.items() if cells[2] == "VIOLATED"]
    invariants = [
        "merges per PR (max)",
        "PRs merged while waiting on a human",
        "MRs failed (by transient faults or anything else)",
        "duplicate landing MRs",
        "duplicate landing PRs (fake)",
        "duplicate dispatches / work PRs per bead",
        "webhook events lost / applied twice",
        "bad inputs accepted",
        "work left with nothing to move it, no escalation",
        "ready PRs not merged after the faults stopped",
        "worker exits of their own",
    ]
    for prefix in invariants:
        found = [cells for name, cells in rows.items() if name.startswith(prefix)]
        assert len(found) == 1, prefix
        assert found[0][2] == "", (prefix, found)
    # The soak did what it says: faults, kills, webhooks, merges.
    assert sum(int(cells[0]) for name, cells in rows.items() if name.startswith("faults: ")) > 0
    assert int(rows["worker kills (SIGKILL)"][0].split()[0]) > 0
    good, _replayed, _bad = rows["webhooks: good / replayed / bad"][0].split(" / ")
    assert int(good) > 0
    merged = int(rows["reconciler ticks / MRs / merged"][0].split(" / ")[2])
    assert merged > 0


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--workers=0", "--workers must be from 1 to 32 (got 0)"),
        ("--fault-rate=1.5", "--fault-rate must be from 0 to 1 (got 1.5)"),
        ("--kill-rate=-1", "--kill-rate must be at least 0 (got -1.0)"),
    ],
)
def test_the_soak_names_an_option_out_of_range(option, message):
    """Refused before it starts anything (no database, no process)."""
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("soak", option, stdout=StringIO())
