"""`manage.py bench` prints one table with every measure (the numbers are the README's, not
asserted here: timings depend on the machine)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

ROWS = (
    "reconciler tick (snapshot + plan)",
    "feedback pass",
    "feedback hour (a pass a minute)",
    "PRs one token keeps fresh",
    "dashboard: towns",
    "dashboard: overview",
    "dashboard: awaiting approval",
    "dashboard: convoys",
    "dashboard: bead",
    "dashboard: telemetry",
    "dashboard: reconciler",
    "admin: beads",
    "admin: beads search",
    "admin: merge requests",
    "admin: bead events",
    "admin: agents",
    "admin: convoys",
    "admin: telemetry",
    "admin: reconciler ticks",
)


@pytest.mark.django_db(transaction=True)
def test_bench_prints_every_row_of_the_table():
    out = StringIO()
    call_command(
        "bench", "--active", "20,40", "--prs", "3", "--runs", "1", "--merge-runs", "0", stdout=out
    )
    lines = out.getvalue().splitlines()
    table = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert set(ROWS) <= set(table)
    # One tick row per size, each measured; every page answered 200 (no note).
    ticks = [line for line in lines if "reconciler tick (" in line]
    assert len(ticks) == 2
    assert "20 active / 200 closed" in ticks[0] and "40 active / 400 closed" in ticks[1]
    for name in ROWS[4:]:
        cells = [c.strip() for c in table[name].split("|")[1:-1]]
        assert cells[2] and cells[3].isdigit(), name
        assert cells[4] == "", f"{name}: {cells[4]}"
    assert "3 PRs" in table["feedback pass"] and "points/PR" in table["feedback pass"]
    hour = table["feedback hour (a pass a minute)"]
    assert "3 PRs, 33% running checks" in hour and "304)" in hour
    assert "if all had running checks" in table["PRs one token keeps fresh"]
