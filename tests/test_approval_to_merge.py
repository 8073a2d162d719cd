"""End to end, as the bench measures it (gastown/management/merge_latency.py): the fake GitHub
over HTTP delivers a review to gunicorn, the running qcluster checks the PR and merges it.
Bounded (a merge must come within a minute) and about correctness, not timing: each approved
PR is merged, once."""

from __future__ import annotations

from gastown.management.merge_latency import measure


def test_approvals_delivered_by_webhook_are_merged_once_by_the_running_workers():
    measured = measure(webhook_runs=2, polling_runs=0)
    assert len(measured.webhook) == 2
    assert all(seconds is not None for seconds in measured.webhook), measured
    assert measured.merge_calls == 2
